//===- LowerRuntimeChecks.cpp - cf.assert as calls into the runtime -------===//
//
// Failed run-time checks of a compiled library report to its caller: each
// cf.assert becomes a call to mokaCheckFailed(message) when its condition is
// false.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace moka {
#define GEN_PASS_DEF_LOWERRUNTIMECHECKSPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

constexpr const char *kCheckFailed = "mokaCheckFailed";

struct LowerRuntimeChecksPass
    : public moka::impl::LowerRuntimeChecksPassBase<LowerRuntimeChecksPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<cf::AssertOp> asserts;
    // A check inside a parallel loop may run on a worker thread, from which
    // no unwinding to the caller is possible: it keeps printing and
    // aborting.
    module.walk([&](cf::AssertOp op) {
      if (!op->getParentOfType<scf::ForallOp>() &&
          !op->getParentOfType<scf::ParallelOp>())
        asserts.push_back(op);
    });
    if (asserts.empty())
      return;

    auto ptrType = LLVM::LLVMPointerType::get(ctx);
    OpBuilder top = OpBuilder::atBlockBegin(module.getBody());
    auto callee = module.lookupSymbol<LLVM::LLVMFuncOp>(kCheckFailed);
    if (!callee)
      callee = LLVM::LLVMFuncOp::create(
          top, module.getLoc(), kCheckFailed,
          LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptrType}));

    // One global per distinct message.
    llvm::StringMap<LLVM::GlobalOp> messages;
    for (cf::AssertOp op : asserts) {
      std::string text = op.getMsg().str();
      LLVM::GlobalOp &global = messages[text];
      if (!global) {
        std::string name =
            "__moka_check_message_" + std::to_string(messages.size() - 1);
        text.push_back('\0');
        auto type =
            LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), text.size());
        global = LLVM::GlobalOp::create(
            top, op.getLoc(), type, /*isConstant=*/true, LLVM::Linkage::Private,
            name, top.getStringAttr(text));
      }
      OpBuilder b(op);
      Location loc = op.getLoc();
      Value failed = arith::XOrIOp::create(
          b, loc, op.getArg(),
          arith::ConstantOp::create(b, loc, b.getBoolAttr(true)));
      scf::IfOp::create(b, loc, failed, [&](OpBuilder &tb, Location tl) {
        Value message = LLVM::AddressOfOp::create(tb, tl, global);
        LLVM::CallOp::create(tb, tl, callee, ValueRange{message});
        scf::YieldOp::create(tb, tl);
      });
      op.erase();
    }
  }
};

} // namespace
