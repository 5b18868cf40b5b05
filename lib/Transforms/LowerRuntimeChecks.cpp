//===- LowerRuntimeChecks.cpp - cf.assert as calls into the runtime -------===//
//
// Failed run-time checks of a compiled library report to its caller: each
// cf.assert becomes a call to mokaCheckFailed(message) when its condition is
// false. A check inside a parallel loop whose condition does not depend on
// the loop (a shape check of a fused tile) is hoisted out of it first, so
// that it runs on the calling thread, which can unwind to the caller.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace moka {
#define GEN_PASS_DEF_LOWERRUNTIMECHECKSPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

constexpr const char *kCheckFailed = "mokaCheckFailed";

bool isParallelLoop(Operation *op) {
  return isa<scf::ForallOp, scf::ParallelOp>(op);
}

/// Moves `check` in front of the outermost parallel loop around it, with
/// the side-effect-free ops that compute its condition inside the loop,
/// when none of them depends on a value defined in the loop otherwise
/// (induction variables, shared outputs, loads). A loop that runs no
/// iteration then still checks: the condition is one of its operands'
/// shapes, not of its iterations.
void hoistOutOfParallelLoops(cf::AssertOp check) {
  Operation *outermost = nullptr;
  for (Operation *p = check->getParentOp(); p; p = p->getParentOp())
    if (isParallelLoop(p))
      outermost = p;
  if (!outermost)
    return;
  BackwardSliceOptions options;
  options.inclusive = false;
  options.omitBlockArguments = false;
  options.filter = [&](Operation *op) {
    return outermost->isProperAncestor(op);
  };
  SetVector<Operation *> slice;
  if (failed(getBackwardSlice(check.getOperation(), &slice, options)))
    return;
  for (Operation *op : slice) {
    if (op->getNumRegions() || !isMemoryEffectFree(op))
      return;
    for (Value operand : op->getOperands())
      if (isa<BlockArgument>(operand) &&
          outermost->isProperAncestor(
              cast<BlockArgument>(operand).getOwner()->getParentOp()))
        return;
  }
  if (isa<BlockArgument>(check.getArg()) &&
      outermost->isAncestor(
          cast<BlockArgument>(check.getArg()).getOwner()->getParentOp()))
    return;
  OpBuilder b(outermost);
  IRMapping mapping;
  for (Operation *op : slice) // In topological order.
    b.clone(*op, mapping);
  b.clone(*check, mapping);
  check.erase();
}

struct LowerRuntimeChecksPass
    : public moka::impl::LowerRuntimeChecksPassBase<LowerRuntimeChecksPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<cf::AssertOp> nested;
    module.walk([&](cf::AssertOp op) {
      if (op->getParentOfType<scf::ForallOp>() ||
          op->getParentOfType<scf::ParallelOp>())
        nested.push_back(op);
    });
    for (cf::AssertOp op : nested)
      hoistOutOfParallelLoops(op);

    SmallVector<cf::AssertOp> asserts;
    // A check left inside a parallel loop may run on a worker thread, from
    // which no unwinding to the caller is possible: it keeps printing and
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
