import CCUDA
import Foundation

// The CUDA backend's own kernels (CUDAKernels.swift): everything but the 3x3x3 convolutions.
// Every launch is asynchronous on the backend's stream; the only host copies are the loss's two sums,
// the three overlap counts, the gradient's sum of squares, and in segmentation a fragment's four sums and
// the memory's hash.
//
// Reductions over voxels run on a grid that depends only on the sizes (kernelReductionParts), each
// block reducing a fixed range in double with a fixed tree, and the partials are summed by a second
// kernel with a fixed tree: the same inputs give bit-identical results on every run.

extension CUDABackend {
    // MARK: - Launch geometry

    /// Blocks per row of a reduction over `voxels` items in each of `rows` rows: at least 16 items
    /// per thread, about 4096 blocks in all, at most 1024 per row. A function of the sizes only.
    fileprivate func kernelReductionParts(_ voxels: Int, rows: Int) -> Int {
        let byWork = (voxels + 4095) / 4096
        let byGrid = max(1, 4096 / max(rows, 1))
        return max(1, min(byWork, byGrid, 1024))
    }

    /// A tensor passed to a kernel instance over elements of `format`: float32 but for the activations of a kernel's
    /// bfloat16 instance (`CUDAKernel.bfloat16Instance`). A tensor of the other format stops here, in every build (a
    /// release build compiles preconditions out), before a kernel reads or writes its memory as the wrong type.
    fileprivate func kernelArg(_ t: TensorRef, _ format: ElementFormat = .fp32) -> KernelArg {
        if self.format(t) != format { fatalError("a \(self.format(t).rawValue) tensor where the kernel takes \(format.rawValue)") }
        return .pointer(pointer(t))
    }

    fileprivate func kernelFlag(_ b: Bool) -> KernelArg { .int32(b ? 1 : 0) }

    /// Blocks along a row of `voxels` elements for a kernel that streams rows 16 bytes at a time (a thread per
    /// vector: `ifcn_vec` in the kernel source); its element-by-element fallback strides over the same grid.
    fileprivate func rowVectorBlocks(_ voxels: Int, _ format: ElementFormat) -> Int {
        let width = 16 / format.bytes
        return kernelBlocks((voxels + width - 1) / width)
    }

    /// One launch over (x: blocks, y: rows) with the backend's block size.
    fileprivate func launchRows(_ kernel: CUDAKernel, format: ElementFormat = .fp32, blocks: Int, rows: Int, _ args: [KernelArg]) {
        precondition(rows <= 65535, "\(kernel.rawValue): \(rows) rows exceed the grid's y limit")
        launch(kernel, format: format, grid: blocks, gridY: rows, block: CUDAKernelSource.blockSize, args)
    }

    fileprivate func launch1D(_ kernel: CUDAKernel, format: ElementFormat = .fp32, blocks: Int, _ args: [KernelArg]) {
        launch(kernel, format: format, grid: blocks, block: CUDAKernelSource.blockSize, args)
    }

    /// Byte offsets of consecutive regions of a workspace, each aligned to 256 bytes.
    fileprivate func kernelLayout(_ sizes: [Int]) -> (offsets: [Int], total: Int) {
        var offsets: [Int] = [], total = 0
        for s in sizes {
            offsets.append(total)
            total += (max(s, 1) + 255) / 256 * 256
        }
        return (offsets, total)
    }

    // MARK: - Element-wise

    public func reluForward(_ tensor: TensorRef) {
        let n = tensor.count
        guard n > 0 else { return }
        let f = format(tensor)
        launch1D(.reluForward, format: f, blocks: rowVectorBlocks(n, f), [kernelArg(tensor, f), .int64(Int64(n))])
    }

    public func reluBackward(output: TensorRef, grad: TensorRef) {
        let n = grad.count
        guard n > 0 else { return }
        let f = format(output)
        launch1D(.reluBackward, format: f, blocks: rowVectorBlocks(n, f), [kernelArg(output, f), kernelArg(grad, f), .int64(Int64(n))])
    }

    public func sigmoidForward(input: TensorRef, output: TensorRef) {
        let n = input.count
        guard n > 0 else { return }
        let f = format(input)
        launch1D(.sigmoidForward, format: f, blocks: rowVectorBlocks(n, f), [kernelArg(input, f), kernelArg(output, f), .int64(Int64(n))])
    }

    /// Copies `t` (`operand` in ifcn's order) into `address` as the backend's convolutions take it: bfloat16 (round
    /// to nearest even) and/or channels-last with zero padding channels.
    func stage(_ t: TensorRef, _ operand: StagedOperand, into address: UInt64) {
        precondition(t.count == operand.count, "staged operand of the wrong size")
        guard t.count > 0 else { return }
        stagingBytes += operand.count * format(t).bytes + operand.stagedCount * convolutionVariant.precision.bytes
        switch layout {
        case .ncdhw:
            if format(t) != .fp32 || math != .bf16 { fatalError("only float32 tensors are staged for bf16 NCDHW convolutions") }
            launch1D(.toBFloat16, blocks: kernelBlocks(t.count), [kernelArg(t), .pointer(address), .int64(Int64(t.count))])
        case .ndhwc:
            if math != .bf16 && format(t) != .fp32 { fatalError("bfloat16 tensors in \(math.rawValue) convolutions") }
            launchTiles(math == .bf16 ? .toChannelsLastBFloat16 : .toChannelsLast, format: format(t), operand,
                        channels: operand.stride,
                        [kernelArg(t, format(t)), .pointer(address), .int32(Int32(operand.channels)), .int32(Int32(operand.stride)),
                         .int64(Int64(operand.voxels))])
        }
    }

    /// Copies a staged result at `address` back into `t` (exactly: bfloat16 widens without rounding), adding to it
    /// when `accumulate` (into a bfloat16 `t`, the sum rounded).
    func unstage(_ address: UInt64, _ operand: StagedOperand, into t: TensorRef, accumulate: Bool) {
        precondition(t.count == operand.count, "staged operand of the wrong size")
        guard t.count > 0 else { return }
        stagingBytes += operand.stagedCount * convolutionVariant.precision.bytes + operand.count * format(t).bytes * (accumulate ? 2 : 1)
        switch layout {
        case .ncdhw:
            if math != .bf16 { fatalError("float32 NCDHW convolutions are not staged") }
            launch1D(.fromBFloat16, format: format(t), blocks: kernelBlocks(t.count),
                     [.pointer(address), kernelArg(t, format(t)), kernelFlag(accumulate), .int64(Int64(t.count))])
        case .ndhwc:
            if math != .bf16 && format(t) != .fp32 { fatalError("bfloat16 tensors in \(math.rawValue) convolutions") }
            launchTiles(math == .bf16 ? .fromChannelsLastBFloat16 : .fromChannelsLast, format: format(t), operand,
                        channels: operand.channels,
                        [.pointer(address), kernelArg(t, format(t)), .int32(Int32(operand.channels)), .int32(Int32(operand.stride)),
                         .int64(Int64(operand.voxels)), kernelFlag(accumulate)])
        }
    }

    /// A transposing kernel's grid: x = tiles of 64 voxels times batches, y = tiles of 32 of `channels`.
    private func launchTiles(_ kernel: CUDAKernel, format: ElementFormat, _ operand: StagedOperand, channels: Int,
                             _ args: [KernelArg]) {
        let channelTiles = (channels + 31) / 32
        precondition(channelTiles <= 65535, "\(kernel.rawValue): \(channels) channels exceed the grid's y limit")
        launch(kernel, format: format, grid: (operand.voxels + 63) / 64 * operand.batches, gridY: channelTiles,
               block: CUDAKernelSource.blockSize, args)
    }

    public func scale(_ tensor: TensorRef, by factor: Float) {
        let n = tensor.count
        guard n > 0 else { return }
        launch1D(.scale, blocks: kernelBlocks(n), [kernelArg(tensor), .float(factor), .int64(Int64(n))])
    }

    // MARK: - Whole-scan volumes (segmentation)

    private func boxArgs(_ box: PatchBox) -> [KernelArg] {
        [.int32(Int32(box.side)), .int32(Int32(box.scan.x)), .int32(Int32(box.scan.y)), .int32(Int32(box.scan.z)),
         .int32(Int32(box.origin.x)), .int32(Int32(box.origin.y)), .int32(Int32(box.origin.z))]
    }

    public func extractPatch(_ volume: TensorRef, box: PatchBox, fill: Float, into patch: TensorRef) {
        precondition(patch.count == box.side * box.side * box.side, "patch tensor of the wrong size")
        let f = format(patch)
        launch1D(.extractPatch, format: f, blocks: kernelBlocks(patch.count),
                 [kernelArg(volume), kernelArg(patch, f)] + boxArgs(box) + [.float(fill)])
    }

    public func extractMaskPatch(_ mask: TensorRef, box: PatchBox, into patch: TensorRef) {
        precondition(patch.count == box.side * box.side * box.side, "patch tensor of the wrong size")
        let f = format(patch)
        launch1D(.extractMaskPatch, format: f, blocks: kernelBlocks(patch.count), [kernelArg(mask), kernelArg(patch, f)] + boxArgs(box))
    }

    public func maskHash(_ mask: TensorRef, box: PatchBox) -> UInt64 {
        let parts = kernelReductionParts(box.side * box.side * box.side, rows: 1)
        let layout = kernelLayout([8, parts * 8])
        let base = workspace(.segmentation, bytes: layout.total)
        let out = base + UInt64(layout.offsets[0]), partial = base + UInt64(layout.offsets[1])
        launch1D(.maskHashPartial, blocks: parts, [kernelArg(mask), .pointer(partial)] + boxArgs(box) + [.int32(Int32(parts))])
        launch1D(.maskHashFinalize, blocks: 1, [.pointer(partial), .pointer(out), .int32(Int32(parts))])
        return read(out, count: 1, as: UInt64.self)[0]
    }

    public func fragmentSums(_ probabilities: TensorRef, box: PatchBox, unlabelledIn labels: TensorRef?) -> VoxelSums {
        let parts = kernelReductionParts(box.side * box.side * box.side, rows: 1)
        let layout = kernelLayout([4 * 8, 4 * parts * 8])
        let base = workspace(.segmentation, bytes: layout.total)
        let out = base + UInt64(layout.offsets[0]), partial = base + UInt64(layout.offsets[1])
        let f = format(probabilities)
        launch1D(.fragmentSumsPartial, format: f, blocks: parts,
                 [kernelArg(probabilities, f), labels.map { kernelArg($0) } ?? .pointer(0), .pointer(partial)] + boxArgs(box)
                    + [.int32(Int32(parts))])
        launch1D(.fragmentSumsFinalize, blocks: 1, [.pointer(partial), .pointer(out), .int32(Int32(parts))])
        let v = readDoubles(out, count: 4)
        return VoxelSums(count: Int(v[0]), sum: SIMD3(v[1], v[2], v[3]))
    }

    public func acceptFragment(_ probabilities: TensorRef, box: PatchBox, mask: TensorRef, labels: TensorRef, label: Int32) {
        let f = format(probabilities)
        launch1D(.acceptFragment, format: f, blocks: kernelBlocks(box.side * box.side * box.side),
                 [kernelArg(probabilities, f), kernelArg(mask), kernelArg(labels), .int32(label)] + boxArgs(box))
    }

    public func sumOfSquares(_ tensor: TensorRef) -> Double {
        let n = tensor.count
        guard n > 0 else { return 0 }
        let parts = kernelReductionParts(n, rows: 1)
        let layout = kernelLayout([8, parts * 8])
        let base = workspace(.reduction, bytes: layout.total)
        let out = base + UInt64(layout.offsets[0]), partial = base + UInt64(layout.offsets[1])
        launch1D(.sumSquaresPartial, blocks: parts, [kernelArg(tensor), .pointer(partial), .int64(Int64(n)), .int32(Int32(parts))])
        launch1D(.sumFinalize, blocks: 1, [.pointer(partial), .pointer(out), .int32(Int32(parts))])
        return readDoubles(out, count: 1)[0]
    }

    public func adamStep(parameters: TensorRef, gradients: TensorRef, firstMoment: TensorRef, secondMoment: TensorRef,
                         learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, step: Int) {
        let n = parameters.count
        guard n > 0 else { return }
        // As CPUBackend.adamStep: bias corrections in double on the host, rounded to float.
        let bc1 = 1 - pow(Double(beta1), Double(step))
        let bc2 = 1 - pow(Double(beta2), Double(step))
        let stepSize = Float(Double(learningRate) / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        launch1D(.adamStep, blocks: kernelBlocks(n),
                 [kernelArg(parameters), kernelArg(gradients), kernelArg(firstMoment), kernelArg(secondMoment),
                  .float(stepSize), .float(beta1), .float(beta2), .float(bc2Sqrt), .float(epsilon), .int64(Int64(n))])
    }

    // MARK: - Loss

    public func trainingLoss(prob: TensorRef, target: TensorRef, weight: TensorRef, lambda: Float, gradLogit: TensorRef,
                             clsLogit: TensorRef, completenessLabel: Float, clsGradLogit: TensorRef) {
        precondition(prob.count == target.count && prob.count == weight.count && prob.count == gradLogit.count,
                     "loss of unequal sizes")
        let n = prob.count
        precondition(n > 0, "loss of an empty patch")
        // The step's scalars, as doubles on the device: lambda * fp, fn, completeness, its cross-entropy, and the
        // three overlap counts. Each kernel pair below sums its partials in the workspace's second part; they run
        // one after the other on the stream, so they share it.
        let scalars = workspace(.stepScalars, bytes: CUDABackend.trainingScalarCount * 8)
        let parts = kernelReductionParts(n, rows: 1)
        let partial = workspace(.loss, bytes: 3 * parts * 8)
        let f = format(prob)
        launch1D(.segLossPartial, format: f, blocks: parts,
                 [kernelArg(prob, f), kernelArg(target), kernelArg(weight), .float(lambda), kernelArg(gradLogit, f),
                  .pointer(partial), .int64(Int64(n)), .int32(Int32(parts))])
        launch1D(.segLossFinalize, blocks: 1, [.pointer(partial), .pointer(scalars), .float(lambda), .int32(Int32(parts))])
        launch1D(.overlapPartial, format: f, blocks: parts,
                 [kernelArg(prob, f), kernelArg(target), .pointer(partial), .int64(Int64(n)), .int32(Int32(parts))])
        // Integer counts converted to double on the device: exact for any count below 2^53.
        launch1D(.overlapFinalize, blocks: 1, [.pointer(partial), .pointer(scalars + 4 * 8), .int32(Int32(parts))])
        launch1D(.completenessLoss, format: f, blocks: 1,
                 [kernelArg(clsLogit, f), .float(completenessLabel), kernelArg(clsGradLogit, f), .pointer(scalars + 2 * 8)])
        // The copy to the host is queued now and waited for in readTrainingScalars, after the backward pass is queued.
        if trainingScalarsTransfer == nil {
            trainingScalarsTransfer = PinnedSlot(backend: self, bytes: CUDABackend.trainingScalarCount * 8)
        }
        let transfer = trainingScalarsTransfer!
        transfer.waitUntilRead()
        queuedWork += 1
        check(ifcn_cu_memcpy_dtoh(transfer.pointer, scalars, CUDABackend.trainingScalarCount * 8, stream), "cuMemcpyDtoHAsync")
        transfer.markQueued()
    }

    public func readTrainingScalars() -> TrainingScalars {
        guard let transfer = trainingScalarsTransfer else { preconditionFailure("readTrainingScalars before any trainingLoss") }
        transfer.waitUntilRead()
        let v = transfer.pointer.bindMemory(to: Double.self, capacity: CUDABackend.trainingScalarCount)
        return TrainingScalars(falsePositive: v[0], falseNegative: v[1], completeness: v[2], classification: v[3],
                               predicted: Int(v[4]), reference: Int(v[5]), intersection: Int(v[6]))
    }

    // MARK: - Batch norm

    public func batchNormTrainForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                      gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                      saved: BatchNormSaved, momentum: Float, epsilon: Float, relu: Bool) {
        guard channels > 0 else { return }
        let parts = kernelReductionParts(voxels, rows: channels)
        let partial = workspace(.reduction, bytes: channels * parts * 2 * 8)
        let n = Int64(voxels), p = Int32(parts)
        // One pass over the input for both moments (in double, about the channel's first element), then the
        // statistics, scale and shift per channel.
        let f = format(input)
        launchRows(.batchNormStatsPartial, format: f, blocks: parts, rows: channels,
                   [kernelArg(input, f), .pointer(partial), .int64(n), .int32(p)])
        launch1D(.batchNormTrainFinalize, format: f, blocks: channels,
                 [kernelArg(input, f), .pointer(partial), kernelArg(gamma), kernelArg(beta),
                  kernelArg(runningMean), kernelArg(runningVar), kernelArg(saved.mean), kernelArg(saved.invStd),
                  kernelArg(saved.scale), kernelArg(saved.shift), .int32(p), .int64(n), .float(momentum), .float(epsilon)])
        batchNormRecompute(input: input, output: output, channels: channels, voxels: voxels, saved: saved, relu: relu)
    }

    public func batchNormRecompute(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                   saved: BatchNormSaved, relu: Bool) {
        guard channels > 0 else { return }
        let f = format(input)
        launchRows(.batchNormApply, format: f, blocks: rowVectorBlocks(voxels, f), rows: channels,
                   [kernelArg(input, f), kernelArg(output, f), kernelArg(saved.mean), kernelArg(saved.scale),
                    kernelArg(saved.shift), .int64(Int64(voxels)), kernelFlag(relu)])
    }

    public func batchNormEvalForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int,
                                     gamma: TensorRef, beta: TensorRef, runningMean: TensorRef, runningVar: TensorRef,
                                     epsilon: Float, relu: Bool) {
        guard channels > 0 else { return }
        let layout = kernelLayout([channels * 4, channels * 4, channels * 4])
        let base = workspace(.reduction, bytes: layout.total)
        let mean = base + UInt64(layout.offsets[0]), scale = base + UInt64(layout.offsets[1])
        let shift = base + UInt64(layout.offsets[2])
        launch1D(.batchNormEvalPrepare, blocks: (channels + CUDAKernelSource.blockSize - 1) / CUDAKernelSource.blockSize,
                 [kernelArg(gamma), kernelArg(beta), kernelArg(runningMean), kernelArg(runningVar),
                  .pointer(mean), .pointer(scale), .pointer(shift), .int32(Int32(channels)), .float(epsilon)])
        let f = format(input)
        launchRows(.batchNormApply, format: f, blocks: rowVectorBlocks(voxels, f), rows: channels,
                   [kernelArg(input, f), kernelArg(output, f), .pointer(mean), .pointer(scale), .pointer(shift),
                    .int64(Int64(voxels)), kernelFlag(relu)])
    }

    public func batchNormBackward(input: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, gamma: TensorRef, saved: BatchNormSaved,
                                  gradGamma: TensorRef, gradBeta: TensorRef, relu: Bool, accumulate: Bool) {
        guard channels > 0 else { return }
        let parts = kernelReductionParts(voxels, rows: channels)
        let layout = kernelLayout([channels * parts * 2 * 8, channels * 2 * 8])
        let base = workspace(.reduction, bytes: layout.total)
        let partial = base + UInt64(layout.offsets[0]), sums = base + UInt64(layout.offsets[1])
        let n = Int64(voxels), p = Int32(parts)
        let f = format(input)
        launchRows(.batchNormBackwardPartial, format: f, blocks: parts, rows: channels,
                   [kernelArg(input, f), kernelArg(gradOutput, f), kernelArg(saved.mean), kernelArg(saved.invStd),
                    kernelArg(saved.scale), kernelArg(saved.shift), .pointer(partial), .int64(n), .int32(p), kernelFlag(relu)])
        launch1D(.batchNormBackwardFinalize, blocks: channels,
                 [.pointer(partial), kernelArg(gradGamma), kernelArg(gradBeta), .pointer(sums), .int32(p)])
        launchRows(.batchNormBackwardApply, format: f, blocks: rowVectorBlocks(voxels, f), rows: channels,
                   [kernelArg(input, f), kernelArg(gradOutput, f), kernelArg(gradInput, f), kernelArg(gamma),
                    kernelArg(saved.mean), kernelArg(saved.invStd), kernelArg(saved.scale), kernelArg(saved.shift),
                    .pointer(sums), .int64(n), kernelFlag(relu), kernelFlag(accumulate)])
    }

    // MARK: - Pooling and upsampling

    /// Blocks for a pooling or upsampling kernel over `n` elements (outputs of max pooling, inputs of upsampling):
    /// a thread per 4 neighbouring elements where the extent lets the kernel move them 16 bytes at a time (the
    /// kernel's `ifcn_pooling_vectorised`), else one per element.
    fileprivate func poolingBlocks(_ n: Int, groupsOf4: Bool) -> Int {
        kernelBlocks(groupsOf4 ? (n + 3) / 4 : n)
    }

    public func maxPool2Forward(input: TensorRef, output: TensorRef, channels: Int, extent e: Extent3) {
        let outputs = channels * e.halved.voxels
        guard outputs > 0 else { return }
        let f = format(input)
        launch1D(.maxPool2Forward, format: f, blocks: poolingBlocks(outputs, groupsOf4: e.w % 8 == 0),
                 [kernelArg(input, f), kernelArg(output, f), .int64(Int64(outputs)),
                  .int32(Int32(e.d)), .int32(Int32(e.h)), .int32(Int32(e.w))])
    }

    public func maxPool2Backward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                 channels: Int, extent e: Extent3, accumulate: Bool) {
        let outputs = channels * e.halved.voxels
        guard outputs > 0 else { return }
        let f = format(input)
        launch1D(.maxPool2Backward, format: f, blocks: poolingBlocks(outputs, groupsOf4: e.w % 8 == 0),
                 [kernelArg(input, f), kernelArg(gradOutput, f), kernelArg(gradInput, f), .int64(Int64(outputs)),
                  .int32(Int32(e.d)), .int32(Int32(e.h)), .int32(Int32(e.w)), kernelFlag(accumulate)])
    }

    public func upsample2Forward(input: TensorRef, output: TensorRef, channels: Int, extent e: Extent3) {
        let inputs = channels * e.voxels
        guard inputs > 0 else { return }
        let f = format(input)
        launch1D(.upsample2Forward, format: f, blocks: poolingBlocks(inputs, groupsOf4: e.w % 4 == 0),
                 [kernelArg(input, f), kernelArg(output, f), .int64(Int64(inputs)),
                  .int32(Int32(e.d)), .int32(Int32(e.h)), .int32(Int32(e.w))])
    }

    public func upsample2Backward(gradOutput: TensorRef, gradInput: TensorRef, channels: Int, extent e: Extent3,
                                  accumulate: Bool) {
        let inputs = channels * e.voxels
        guard inputs > 0 else { return }
        let f = format(gradOutput)
        launch1D(.upsample2Backward, format: f, blocks: poolingBlocks(inputs, groupsOf4: e.w % 4 == 0),
                 [kernelArg(gradOutput, f), kernelArg(gradInput, f), .int64(Int64(inputs)),
                  .int32(Int32(e.d)), .int32(Int32(e.h)), .int32(Int32(e.w)), kernelFlag(accumulate)])
    }

    // MARK: - Global max pooling

    public func globalMaxForward(input: TensorRef, output: TensorRef, channels: Int, voxels: Int) {
        guard channels > 0 else { return }
        let parts = kernelReductionParts(voxels, rows: channels)
        let layout = kernelLayout([channels * parts * 4, channels * parts * 8])
        let base = workspace(.reduction, bytes: layout.total)
        let values = base + UInt64(layout.offsets[0]), indices = base + UInt64(layout.offsets[1])
        let f = format(input)
        launchRows(.globalMaxPartial, format: f, blocks: parts, rows: channels,
                   [kernelArg(input, f), .pointer(values), .pointer(indices), .int64(Int64(voxels)), .int32(Int32(parts))])
        launch1D(.globalMaxFinalize, format: f, blocks: channels,
                 [.pointer(values), .pointer(indices), kernelArg(output, f), .int32(Int32(parts))])
    }

    public func globalMaxBackward(input: TensorRef, output: TensorRef, gradOutput: TensorRef, gradInput: TensorRef,
                                  channels: Int, voxels: Int, accumulate: Bool) {
        guard channels > 0, voxels > 0 else { return }
        let parts = kernelReductionParts(voxels, rows: channels)
        let layout = kernelLayout([channels * parts * 8, channels * 4])
        let base = workspace(.reduction, bytes: layout.total)
        let partial = base + UInt64(layout.offsets[0]), share = base + UInt64(layout.offsets[1])
        let n = Int64(voxels), p = Int32(parts)
        let f = format(input)
        launchRows(.globalMaxCountPartial, format: f, blocks: parts, rows: channels,
                   [kernelArg(input, f), kernelArg(output, f), .pointer(partial), .int64(n), .int32(p)])
        launch1D(.globalMaxShare, format: f, blocks: channels, [.pointer(partial), kernelArg(gradOutput, f), .pointer(share), .int32(p)])
        launchRows(.globalMaxBackwardApply, format: f, blocks: kernelBlocks(voxels), rows: channels,
                   [kernelArg(input, f), kernelArg(output, f), .pointer(share), kernelArg(gradInput, f), .int64(n),
                    kernelFlag(accumulate)])
    }

    // MARK: - Biases and the 1x1x1 convolution

    /// output[c, v] += bias[c].
    func addBias(_ output: TensorRef, bias: TensorRef, channels: Int, voxels: Int) {
        guard channels > 0, voxels > 0 else { return }
        let f = format(output)
        launchRows(.addBias, format: f, blocks: kernelBlocks(voxels), rows: channels,
                   [kernelArg(output, f), kernelArg(bias), .int64(Int64(voxels))])
    }

    /// gradBias[c] += sum_v gradOutput[c, v], summed in double in a fixed order.
    func accumulateBiasGradient(gradOutput: TensorRef, channels: Int, voxels: Int, gradBias: TensorRef) {
        guard channels > 0 else { return }
        let parts = kernelReductionParts(voxels, rows: channels)
        let partial = workspace(.reduction2, bytes: channels * parts * 8)
        let f = format(gradOutput)
        launchRows(.channelSumPartial, format: f, blocks: parts, rows: channels,
                   [kernelArg(gradOutput, f), .pointer(partial), .int64(Int64(voxels)), .int32(Int32(parts))])
        launch1D(.addPartialSums, blocks: channels, [.pointer(partial), kernelArg(gradBias), .int32(Int32(parts))])
    }

    public func conv1Forward(input: TensorRef, inChannels: Int, voxels: Int,
                             weight: TensorRef, bias: TensorRef?, output: TensorRef, outChannels: Int) {
        guard outChannels > 0, voxels > 0 else { return }
        let f = format(input)
        launchRows(.conv1Forward, format: f, blocks: rowVectorBlocks(voxels, f), rows: outChannels,
                   [kernelArg(input, f), kernelArg(weight), bias.map { kernelArg($0) } ?? .pointer(0), kernelArg(output, f),
                    .int32(Int32(inChannels)), .int64(Int64(voxels)), kernelFlag(bias != nil)])
    }

    public func conv1Backward(input: TensorRef, inChannels: Int, voxels: Int, weight: TensorRef,
                              gradOutput: TensorRef, outChannels: Int,
                              gradInput: TensorRef?, accumulate: Bool, gradWeight: TensorRef, gradBias: TensorRef?) {
        if let gradInput, inChannels > 0, voxels > 0 {
            let f = format(gradOutput)
            launchRows(.conv1BackwardData, format: f, blocks: rowVectorBlocks(voxels, f), rows: inChannels,
                       [kernelArg(gradOutput, f), kernelArg(weight), kernelArg(gradInput, f), .int32(Int32(inChannels)),
                        .int32(Int32(outChannels)), .int64(Int64(voxels)), kernelFlag(accumulate)])
        }
        // gradWeight[co, ci] += sum_v dy[co, v] x[ci, v]: one reduction row per weight.
        let rows = outChannels * inChannels
        if rows > 0 {
            let parts = kernelReductionParts(voxels, rows: rows)
            let partial = workspace(.reduction, bytes: rows * parts * 8)
            let f = format(input)
            launchRows(.conv1WeightPartial, format: f, blocks: parts, rows: rows,
                       [kernelArg(input, f), kernelArg(gradOutput, f), .pointer(partial), .int32(Int32(inChannels)),
                        .int64(Int64(voxels)), .int32(Int32(parts))])
            launch1D(.addPartialSums, blocks: rows, [.pointer(partial), kernelArg(gradWeight), .int32(Int32(parts))])
        }
        if let gradBias {
            accumulateBiasGradient(gradOutput: gradOutput, channels: outChannels, voxels: voxels, gradBias: gradBias)
        }
    }
}
