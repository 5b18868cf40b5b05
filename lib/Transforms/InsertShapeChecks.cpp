//===- InsertShapeChecks.cpp - Run-time checks of linalg operand sizes ----===//
//
// Adds a cf.assert for every pair of dynamic operand dimensions of a linalg
// operation that one loop indexes, so a shape mismatch is reported instead
// of reading or writing out of bounds.
//
//===----------------------------------------------------------------------===//

#include "moka/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Interfaces/LoopLikeInterface.h"

namespace moka {
#define GEN_PASS_DEF_INSERTSHAPECHECKSPASS
#include "moka/Transforms/Passes.h.inc"
} // namespace moka

using namespace mlir;

namespace {

struct OperandDim {
  Value value;
  unsigned operand;
  unsigned dim;
};

std::string describe(linalg::LinalgOp op, const OperandDim &a,
                     const OperandDim &b) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "shape mismatch: dimension " << a.dim << " of operand #" << a.operand
     << " and dimension " << b.dim << " of operand #" << b.operand << " of "
     << op->getName() << " must be equal (at " << op->getLoc() << ")";
  return s;
}

struct InsertShapeChecksPass
    : public moka::impl::InsertShapeChecksPassBase<InsertShapeChecksPass> {
  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> ops;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (op.hasPureTensorSemantics() &&
          !op->getParentOfType<LoopLikeOpInterface>())
        ops.push_back(op);
    });
    for (linalg::LinalgOp op : ops) {
      // Operand dimensions indexed directly by each loop.
      SmallVector<SmallVector<OperandDim>> byLoop(op.getNumLoops());
      for (OpOperand &operand : op->getOpOperands()) {
        auto type = dyn_cast<RankedTensorType>(operand.get().getType());
        if (!type)
          continue;
        AffineMap map = op.getMatchingIndexingMap(&operand);
        for (auto [d, expr] : llvm::enumerate(map.getResults()))
          if (auto dimExpr = dyn_cast<AffineDimExpr>(expr))
            byLoop[dimExpr.getPosition()].push_back({operand.get(),
                                                     operand.getOperandNumber(),
                                                     static_cast<unsigned>(d)});
      }
      OpBuilder b(op);
      Location loc = op->getLoc();
      for (const SmallVector<OperandDim> &dims : byLoop) {
        for (size_t i = 1; i < dims.size(); ++i) {
          const OperandDim &ref = dims.front(), &other = dims[i];
          auto refType = cast<RankedTensorType>(ref.value.getType());
          auto otherType = cast<RankedTensorType>(other.value.getType());
          if (!refType.isDynamicDim(ref.dim) &&
              !otherType.isDynamicDim(other.dim))
            continue; // Static sizes: the verifier has compared them.
          Value x = tensor::DimOp::create(b, loc, ref.value, ref.dim);
          Value y = tensor::DimOp::create(b, loc, other.value, other.dim);
          Value same =
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, x, y);
          cf::AssertOp::create(b, loc, same, describe(op, ref, other));
        }
      }
    }
  }
};

} // namespace
