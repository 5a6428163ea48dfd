import CCUDA
import Foundation

/// Device memory of the CUDA backend (float32 or bfloat16 elements, zero-initialised like CPUBuffer).
final class CUDABuffer: DeviceBuffer {
    let count: Int
    let format: ElementFormat
    let address: UInt64
    /// Bytes of the allocation (whole 4-byte words, at least one).
    let bytes: Int
    private let backend: CUDABackend  // strong: the memory must be freed through a live context

    init(count: Int, format: ElementFormat = .fp32, backend: CUDABackend) {
        self.count = count
        self.format = format
        self.backend = backend
        bytes = (max(count, 1) * format.bytes + 3) / 4 * 4
        address = backend.deviceAllocate(bytes: bytes)
        backend.check(ifcn_cu_memset_d32(address, 0, bytes / 4, backend.stream), "cuMemsetD32Async")
    }

    deinit { backend.deviceFree(address, bytes: bytes) }
}

/// Pinned (page-locked) host memory with an event recorded after the last copy that reads or writes it, so the
/// host touches the memory only once the device is done with it.
final class PinnedSlot {
    let pointer: UnsafeMutableRawPointer
    let bytes: Int
    private let event: UnsafeMutableRawPointer
    private unowned let backend: CUDABackend
    /// An event has been recorded since the last wait.
    private var pending = false

    init(backend: CUDABackend, bytes: Int) {
        self.backend = backend
        self.bytes = bytes
        backend.bind()
        var p: UnsafeMutableRawPointer?
        backend.check(ifcn_cu_mem_alloc_host(&p, max(bytes, 1)), "cuMemAllocHost(\(bytes))")
        pointer = p!
        var e: UnsafeMutableRawPointer?
        backend.check(ifcn_cu_event_create_untimed(&e), "cuEventCreate")
        event = e!
    }

    /// Marks the copy just queued on `stream` (the backend's, or its copy stream): the slot is busy until that
    /// stream passes this point.
    func markQueued(on stream: UnsafeMutableRawPointer? = nil) {
        backend.check(ifcn_cu_event_record(event, stream ?? backend.stream), "cuEventRecord")
        pending = true
    }

    /// Waits until the device has finished the last copy queued on the slot (at once when it has).
    func waitUntilRead() {
        guard pending else { return }
        backend.bind()
        backend.check(ifcn_cu_event_synchronize(event), "cuEventSynchronize")
        pending = false
    }

    /// Frees the memory and the event; the caller has waited for the stream.
    func release() {
        _ = ifcn_cu_event_destroy(event)
        _ = ifcn_cu_mem_free_host(pointer)
    }
}

/// Argument of a kernel launch, in the order of the kernel's C parameters.
enum KernelArg {
    case pointer(UInt64), int32(Int32), int64(Int64), float(Float), double(Double)

    /// The C parameter type an argument fills.
    enum Kind: String, Equatable {
        case pointer, int32 = "int", int64 = "long long", float, double
    }

    var kind: Kind {
        switch self {
        case .pointer: return .pointer
        case .int32: return .int32
        case .int64: return .int64
        case .float: return .float
        case .double: return .double
        }
    }
}

/// Grow-only device scratch regions, one per purpose.
enum WorkspaceSlot: Int, CaseIterable {
    case reduction = 0, reduction2 = 1, loss = 2, convolution = 3, convolutionFind = 4, segmentation = 5
    /// Staged convolutions (bf16 math, channels-last layout): the copies of a convolution's input (or input
    /// gradient), output (or output gradient) and filter that cuDNN reads and writes.
    case stagedInput = 6, stagedOutput = 7, stagedFilter = 8
    /// The training step's scalars (`trainingLoss`), as doubles.
    case stepScalars = 9
    /// float32 values on their way into or out of a bfloat16 tensor (`upload`, `download`).
    case conversion = 10
}

/// Convolution math on the GPU: float32 FMA (reference checks, tests), TF32 tensor cores, or bfloat16 operands.
public enum GPUMath: String, CaseIterable, Sendable {
    case fp32, tf32
    /// The 3x3x3 convolutions on bfloat16 copies of their operands, summed in float32 by cuDNN, their results
    /// rounded to bfloat16 and widened back (what PyTorch's bf16 autocast computes); activations, weights, batch
    /// norm, the loss and Adam stay float32.
    case bf16
}

extension GPUMath {
    /// The format of a training network's activations unless `--gpu-activations` says otherwise: bfloat16 with bf16
    /// math, as PyTorch's bf16 autocast keeps them (on an H200 the faster step, in half the memory, and over ten seeds
    /// a training curve with no offset from fp32's: docs/BENCHMARKS.md, "second device run"), else float32.
    public var defaultActivations: ElementFormat { self == .bf16 ? .bf16 : .fp32 }

    /// The layout of the convolutions' operands unless `--gpu-layout` says otherwise. Measured on an H200 at C=64,
    /// P=128 (`bench --conv-sweep`, cuDNN 9.19, the fastest deterministic algorithm of each convolution of a step):
    /// channels-last copies run the tensor-core maths' convolutions faster than ifcn's NCDHW tensors (tf32 45.1 ms
    /// against 55.2, bf16 18.6 against 25.1) and with far less workspace (at most 581 MiB against 1.5 GiB); float32
    /// math, the reference checks' mode, runs on ifcn's own tensors. With bfloat16 activations (`activations` .bf16)
    /// cuDNN reads and writes ifcn's NCDHW tensors as they are, and the whole step ran faster so than on channels-last
    /// copies (H200, C=64, P=128, session 23's device check: 25.7 ms against 27.2; convolutions 20.5 ms against 22.1
    /// with the copies), so bf16 math with bf16 activations keeps NCDHW too.
    public func defaultLayout(activations: ElementFormat = .fp32) -> TensorLayout {
        switch self {
        case .fp32: return .ncdhw
        case .tf32: return .ndhwc
        case .bf16: return activations == .bf16 ? .ncdhw : .ndhwc
        }
    }
}

/// The CUDA backend: one GPU (the driver's primary context), one stream, cuDNN for the 3x3x3
/// convolutions and NVRTC-compiled kernels for everything else. Work is queued asynchronously on
/// the stream; host copies of results (`download`, the loss scalars) wait for it.
public final class CUDABackend: ComputeBackend {
    public let name = "cuda"
    /// Host threads used by the kernels (the GPU does the work).
    public let threads = 1
    public let device: CUDADeviceInfo
    public let math: GPUMath
    /// Memory order of the operands cuDNN sees (`--gpu-layout`): ifcn's own NCDHW, or channels-last copies.
    public let layout: TensorLayout
    /// The format of a training network's activations and their gradients (`--gpu-activations`): float32, or
    /// bfloat16 with bf16 math (PyTorch's bf16 autocast keeps its activations so): half the memory and half the
    /// bytes every kernel over them moves, and with NCDHW no copies of the convolutions' data operands at all.
    public let activationFormat: ElementFormat
    /// Which cuDNN algorithms the convolutions may use.
    public let algorithmPolicy: CUDAAlgorithmPolicy
    let context: UnsafeMutableRawPointer
    let stream: UnsafeMutableRawPointer
    let cudnn: UnsafeMutableRawPointer
    private var functions: [CUDAKernel: UnsafeMutableRawPointer] = [:]
    /// The kernels' instances over bfloat16 activations (`CUDAKernel.bfloat16Instance`).
    private var bfloat16Functions: [CUDAKernel: UnsafeMutableRawPointer] = [:]
    private var workspaces: [WorkspaceSlot: (address: UInt64, bytes: Int)] = [:]
    /// Pinned host memory `withHostMemory` lends (the MPI allreduce's gradients), grown to the largest tensor.
    private var hostStaging: PinnedSlot?
    /// Pinned host memory that large uploads pass through (`upload`), used in turn; each slot's event marks its
    /// last copy done, so a slot is refilled only once the device has read it.
    private var uploadSlots: [PinnedSlot] = []
    private var nextUploadSlot = 0
    /// Slots holding staged uploads (`stageUpload`) not yet sent: the round of the slots passes them by.
    private var reservedSlots = Set<Int>()
    /// Uploads ahead (`uploadAhead`): a second stream for the copy engine, created on first use, with an event
    /// marking the work the copies wait for and one marking the copies done; whether `stream` has still to wait
    /// for copies queued there.
    private var copies: (stream: UnsafeMutableRawPointer, before: UnsafeMutableRawPointer, done: UnsafeMutableRawPointer)?
    private var uploadsAheadPending = false
    /// Copies queued on the copy stream so far.
    public private(set) var uploadsAheadQueued = 0
    /// The training step's scalars (`trainingLoss`): written on the device, copied into pinned host memory
    /// behind an event, read once per step by `readTrainingScalars`.
    var trainingScalarsTransfer: PinnedSlot?
    var convolutions: [ConvolutionShape: OpaquePointer] = [:]
    /// The convolutions' workspace: what the algorithms chosen so far need (`keepConvolutionWorkspace`).
    var convolutionWorkspaceBytes = 0
    let algorithmCache: CUDAAlgorithmCache
    /// Bytes of device memory this backend holds now, and the most it ever held.
    public private(set) var allocatedBytes = 0
    public private(set) var peakAllocatedBytes = 0
    /// Work queued on the stream so far (kernels, copies, fills, convolutions, collectives): a staged copy made when
    /// the count stood at n is still current while it stands at n.
    var queuedWork = 0
    /// The output gradient the last weight-gradient pass staged, while nothing has been queued since: the
    /// data-gradient pass of the same convolution, which `Network` runs next, uses the copy as it is.
    var stagedOutputGradient: (address: UInt64, count: Int, queuedWork: Int)?
    /// Bytes the staging copies of convolution operands read and wrote, and the copies saved by reuse, so far.
    public internal(set) var stagingBytes = 0
    public internal(set) var stagingCopiesReused = 0

    /// Opens device `ordinal` (taken modulo the number of GPUs) and compiles or loads the kernels.
    /// `inventory`: a probe the caller already made (the factory's), else one is made here.
    public init(deviceOrdinal: Int, math: GPUMath, layout: TensorLayout = .ncdhw, activations: ElementFormat = .fp32,
                algorithms: CUDAAlgorithmPolicy = .deterministic, inventory probed: CUDAInventory? = nil) throws {
        if activations == .bf16 && math != .bf16 {
            throw CUDAError("--gpu-activations bf16 needs --gpu-math bf16 (cuDNN's \(math.rawValue) math takes float32 tensors)")
        }
        let inventory = probed ?? CUDAInventory.probe()
        guard inventory.usable else {
            throw CUDAError("CUDA is not usable: " + (inventory.problems.isEmpty ? "no GPU" : inventory.problems.joined(separator: "; ")))
        }
        device = inventory.devices[deviceOrdinal % inventory.devices.count]
        self.math = math
        self.layout = layout
        activationFormat = activations
        algorithmPolicy = algorithms
        var ctx: UnsafeMutableRawPointer?
        try CUDAError.check(ifcn_cu_primary_context(Int32(device.ordinal), &ctx), "cuDevicePrimaryCtxRetain")
        context = ctx!
        var s: UnsafeMutableRawPointer?
        try CUDAError.check(ifcn_cu_stream_create(&s), "cuStreamCreate")
        stream = s!
        var h: UnsafeMutableRawPointer?
        try CUDAError.checkDNN(ifcn_cudnn_create(&h, stream), "cudnnCreate")
        cudnn = h!
        algorithmCache = CUDAAlgorithmCache(device: device, cudnnVersion: inventory.cudnnVersion ?? 0)
        let module = try CUDAKernelCompiler.loadModule(architecture: device.architecture)
        for k in CUDAKernel.allCases {
            var f: UnsafeMutableRawPointer?
            try CUDAError.check(ifcn_cu_module_get_function(&f, module, k.rawValue), "cuModuleGetFunction(\(k.rawValue))")
            functions[k] = f!
            guard let name = k.bfloat16Instance else { continue }
            try CUDAError.check(ifcn_cu_module_get_function(&f, module, name), "cuModuleGetFunction(\(name))")
            bfloat16Functions[k] = f!
        }
    }

    deinit {
        for c in convolutions.values { ifcn_conv3_destroy(c) }
        bind()
        _ = ifcn_cu_stream_synchronize(stream)
        if let c = copies { _ = ifcn_cu_stream_synchronize(c.stream) }
        for slot in uploadSlots + [trainingScalarsTransfer, hostStaging].compactMap({ $0 }) { slot.release() }
    }

    // MARK: the device contract

    /// Makes this backend's context current on the calling thread (cheap when it already is).
    @inline(__always)
    func bind() { check(ifcn_cu_bind(context), "cuCtxSetCurrent") }

    /// The device as failure messages name it.
    public var deviceDescription: String { "GPU \(device.ordinal) (\(device.name), PCI \(device.pciAddress))" }

    /// A failed CUDA call inside a kernel wrapper is a lost device: report it (`DeviceFailure`) and end.
    @inline(__always)
    func check(_ code: Int32, _ call: @autoclosure () -> String) {
        if code != 0 {
            DeviceFailure.stop(device: deviceDescription, call: call(), reason: "\(String(cString: ifcn_cu_error_string(code))) (CUresult \(code))")
        }
    }

    /// The same for cuDNN calls.
    @inline(__always)
    func checkDNN(_ code: Int32, _ call: @autoclosure () -> String) {
        if code != 0 {
            DeviceFailure.stop(device: deviceDescription, call: "cuDNN " + call(),
                               reason: "\(String(cString: ifcn_cudnn_error_string(code))) (cudnnStatus \(code))")
        }
    }

    func deviceAllocate(bytes: Int) -> UInt64 {
        bind()
        var p: UInt64 = 0
        let r = ifcn_cu_mem_alloc(&p, bytes)
        if r != 0 {
            var free = 0, total = 0
            _ = ifcn_cu_mem_get_info(&free, &total)
            DeviceFailure.stop(device: deviceDescription, call: "cuMemAlloc(\(bytes) bytes)",
                               reason: "\(String(cString: ifcn_cu_error_string(r))) (\(free >> 20) MiB free of \(total >> 20) MiB)")
        }
        allocatedBytes += bytes
        peakAllocatedBytes = max(peakAllocatedBytes, allocatedBytes)
        return p
    }

    func deviceFree(_ address: UInt64, bytes: Int) {
        bind()
        _ = ifcn_cu_stream_synchronize(stream)
        if let c = copies { _ = ifcn_cu_stream_synchronize(c.stream) }  // a copy ahead may still write there
        _ = ifcn_cu_mem_free(address)
        allocatedBytes -= bytes
    }

    public func allocate(_ count: Int) -> any DeviceBuffer { CUDABuffer(count: count, backend: self) }

    public func allocateActivations(_ count: Int) -> any DeviceBuffer {
        CUDABuffer(count: count, format: activationFormat, backend: self)
    }

    /// Device address of the first element of `t`.
    @inline(__always)
    func pointer(_ t: TensorRef) -> UInt64 {
        let b = unsafeDowncast(t.buffer, to: CUDABuffer.self)
        return b.address + UInt64(t.offset * b.format.bytes)
    }

    /// The format of `t`'s elements.
    @inline(__always)
    func format(_ t: TensorRef) -> ElementFormat { unsafeDowncast(t.buffer, to: CUDABuffer.self).format }

    public func makeClock() -> any BackendClock { CUDAEventClock(backend: self) }

    public func synchronize() {
        bind()
        awaitUploads()
        check(ifcn_cu_stream_synchronize(stream), "cuStreamSynchronize")
    }

    public func upload(_ source: UnsafePointer<Float>, to destination: TensorRef) {
        bind()
        guard destination.count > 0 else { return }
        let bytes = destination.count * 4
        // A bfloat16 tensor takes the float32 values through the conversion workspace, rounded there on the device.
        let address = float32Address(for: destination)
        defer { narrowIfNeeded(address, into: destination) }
        guard bytes >= CUDABackend.pinnedUploadMinimum else {
            queuedWork += 1
            // From pageable memory the call returns once the source has been staged: the caller may reuse it.
            check(ifcn_cu_memcpy_htod(address, source, bytes, stream), "cuMemcpyHtoDAsync")
            return
        }
        // A large upload from pageable memory would wait for the stream and copy at pageable speed while the device
        // idles. Through pinned slots the host copies the data now, while the device works on what is queued, and
        // the device reads it at the link's full speed when the stream gets there. Chunks of at most a slot's size
        // go through the slots in turn; a slot still being read waits for its event (in a step's steady state the
        // device read it long ago).
        var done = 0
        while done < bytes {
            let chunk = min(bytes - done, CUDABackend.pinnedSlotBytes!)
            let slot = uploadSlots[takeUploadSlot(bytes: chunk)]
            slot.pointer.copyMemory(from: UnsafeRawPointer(source) + done, byteCount: chunk)
            send(slot, bytes: chunk, to: address + UInt64(done))
            done += chunk
        }
    }

    /// Where float32 values for `t` go on the device: `t` itself, or for a bfloat16 tensor the conversion workspace.
    private func float32Address(for t: TensorRef) -> UInt64 {
        format(t) == .fp32 ? pointer(t) : workspace(.conversion, bytes: t.count * 4)
    }

    /// For a bfloat16 `t`: rounds the float32 values at `address` (`float32Address(for: t)`) into it.
    private func narrowIfNeeded(_ address: UInt64, into t: TensorRef) {
        guard format(t) == .bf16, t.count > 0 else { return }
        launch(.toBFloat16, grid: kernelBlocks(t.count), block: CUDAKernelSource.blockSize,
               [.pointer(address), .pointer(pointer(t)), .int64(Int64(t.count))])
    }

    /// The float32 values of `t`: its own address, or for a bfloat16 tensor its values widened into the conversion
    /// workspace.
    private func widened(_ t: TensorRef) -> UInt64 {
        guard format(t) == .bf16 else { return pointer(t) }
        let address = workspace(.conversion, bytes: t.count * 4)
        launch(.fromBFloat16, grid: kernelBlocks(t.count), block: CUDAKernelSource.blockSize,
               [.pointer(pointer(t)), .pointer(address), .int32(0), .int64(Int64(t.count))])
        return address
    }

    /// Blocks of a one-dimensional grid-stride launch over `n` items.
    func kernelBlocks(_ n: Int) -> Int {
        max(1, min((n + CUDAKernelSource.blockSize - 1) / CUDAKernelSource.blockSize, 65535))
    }

    public var stagesUploads: Bool { CUDABackend.pinnedSlotBytes != nil }

    /// The pinned upload slots' size, 0 where uploads go straight from pageable memory (`IFCN_CUDA_UPLOAD_SLOT_BYTES`).
    public var pinnedUploadSlotBytes: Int { CUDABackend.pinnedSlotBytes ?? 0 }

    public func stageUpload(_ source: UnsafePointer<Float>, count: Int) -> StagedUpload? {
        bind()
        let bytes = count * 4
        // One slot per staged upload, and at most half the slots reserved, so the uploads between staging and
        // sending (validation's scans at an epoch's end) still have slots to go round.
        guard let slotBytes = CUDABackend.pinnedSlotBytes, bytes >= CUDABackend.pinnedUploadMinimum, bytes <= slotBytes,
              reservedSlots.count < CUDABackend.pinnedUploadSlots / 2 else { return nil }
        let index = takeUploadSlot(bytes: bytes)
        uploadSlots[index].pointer.copyMemory(from: source, byteCount: bytes)
        reservedSlots.insert(index)
        return StagedUpload(slot: index, count: count)
    }

    public func upload(_ staged: StagedUpload, to destination: TensorRef) {
        bind()
        precondition(reservedSlots.contains(staged.slot), "upload of a staged slot \(staged.slot) that holds nothing staged")
        precondition(staged.count == destination.count, "staged upload of \(staged.count) values to a tensor of \(destination.count)")
        reservedSlots.remove(staged.slot)
        let address = float32Address(for: destination)
        send(uploadSlots[staged.slot], bytes: staged.count * 4, to: address)
        narrowIfNeeded(address, into: destination)
    }

    /// On the copy stream, from a pinned slot (the host copies `source` there now): the copy waits for the work
    /// queued so far, which may still read `destination`, and then runs beside what is queued after it, until
    /// `awaitUploads`. A float32 tensor that fits a slot; others go in order through `upload`.
    public func uploadAhead(_ source: UnsafePointer<Float>, to destination: TensorRef) {
        bind()
        let bytes = destination.count * 4
        guard format(destination) == .fp32, let slotBytes = CUDABackend.pinnedSlotBytes,
              bytes >= CUDABackend.pinnedUploadMinimum, bytes <= slotBytes else {
            upload(source, to: destination)
            return
        }
        let c = copyStream()
        check(ifcn_cu_event_record(c.before, stream), "cuEventRecord")
        check(ifcn_cu_stream_wait_event(c.stream, c.before), "cuStreamWaitEvent")
        let slot = uploadSlots[takeUploadSlot(bytes: bytes)]
        slot.pointer.copyMemory(from: source, byteCount: bytes)
        send(slot, bytes: bytes, to: pointer(destination), on: c.stream)
        check(ifcn_cu_event_record(c.done, c.stream), "cuEventRecord")
        uploadsAheadPending = true
        uploadsAheadQueued += 1
    }

    public func awaitUploads() {
        guard uploadsAheadPending, let c = copies else { return }
        bind()
        check(ifcn_cu_stream_wait_event(stream, c.done), "cuStreamWaitEvent")
        uploadsAheadPending = false
    }

    private func copyStream() -> (stream: UnsafeMutableRawPointer, before: UnsafeMutableRawPointer, done: UnsafeMutableRawPointer) {
        if let c = copies { return c }
        var s: UnsafeMutableRawPointer?, before: UnsafeMutableRawPointer?, done: UnsafeMutableRawPointer?
        check(ifcn_cu_stream_create(&s), "cuStreamCreate")
        check(ifcn_cu_event_create_untimed(&before), "cuEventCreate")
        check(ifcn_cu_event_create_untimed(&done), "cuEventCreate")
        copies = (s!, before!, done!)
        return copies!
    }

    /// The next slot in turn that holds no staged upload, once the device has read it, holding at least `bytes`.
    private func takeUploadSlot(bytes: Int) -> Int {
        if uploadSlots.count < CUDABackend.pinnedUploadSlots {
            uploadSlots.append(PinnedSlot(backend: self, bytes: bytes))
            return uploadSlots.count - 1
        }
        var index = nextUploadSlot % uploadSlots.count
        while reservedSlots.contains(index) {
            nextUploadSlot += 1
            index = nextUploadSlot % uploadSlots.count
        }
        nextUploadSlot += 1
        uploadSlots[index].waitUntilRead()
        if uploadSlots[index].bytes < bytes {
            uploadSlots[index].release()
            uploadSlots[index] = PinnedSlot(backend: self, bytes: bytes)
        }
        return index
    }

    /// Queues the copy of a slot's first `bytes` to device `address` on `other` (default: the backend's stream);
    /// the slot is busy until the device has read it.
    private func send(_ slot: PinnedSlot, bytes: Int, to address: UInt64, on other: UnsafeMutableRawPointer? = nil) {
        queuedWork += 1
        check(ifcn_cu_memcpy_htod(address, slot.pointer, bytes, other ?? stream), "cuMemcpyHtoDAsync")
        slot.markQueued(on: other)
    }

    public func download(_ source: TensorRef, to destination: UnsafeMutablePointer<Float>) {
        bind()
        guard source.count > 0 else { return }
        check(ifcn_cu_memcpy_dtoh(destination, widened(source), source.count * 4, stream), "cuMemcpyDtoHAsync")
        synchronize()
    }

    /// Stages the tensor through pinned host memory (for MPI), copying changes back.
    public func withHostMemory<R>(_ tensor: TensorRef, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        bind()
        let bytes = max(tensor.count, 1) * 4
        if (hostStaging?.bytes ?? 0) < bytes {
            hostStaging?.release()  // nothing pending: every call ends with the stream synchronised
            hostStaging = PinnedSlot(backend: self, bytes: bytes)
        }
        let slot = hostStaging!
        let host = slot.pointer.bindMemory(to: Float.self, capacity: tensor.count)
        download(tensor, to: host)
        let result = try body(host)
        // Pinned already: straight to the device.
        if tensor.count > 0 {
            let address = float32Address(for: tensor)
            send(slot, bytes: tensor.count * 4, to: address)
            narrowIfNeeded(address, into: tensor)
        }
        synchronize()
        return result
    }

    public func fill(_ tensor: TensorRef, value: Float) {
        bind()
        guard tensor.count > 0 else { return }
        if format(tensor) == .bf16 {
            launch(.fillBFloat16, grid: kernelBlocks(tensor.count), block: CUDAKernelSource.blockSize,
                   [.pointer(pointer(tensor)), .float(value), .int64(Int64(tensor.count))])
            return
        }
        queuedWork += 1
        check(ifcn_cu_memset_d32(pointer(tensor), value.bitPattern, tensor.count, stream), "cuMemsetD32Async")
    }

    public func copy(_ source: TensorRef, to destination: TensorRef) {
        precondition(source.count == destination.count, "copy of unequal sizes")
        bind()
        guard source.count > 0 else { return }
        queuedWork += 1
        if format(source) != format(destination) { fatalError("a copy between a float32 and a bfloat16 tensor") }
        let bytes = source.count * format(source).bytes
        check(ifcn_cu_memcpy_dtod(pointer(destination), pointer(source), bytes, stream), "cuMemcpyDtoDAsync")
    }

    /// Queues `kernel` on the stream, its instance over activations of `format`. `grid` x `gridY` blocks of `block`
    /// threads.
    func launch(_ kernel: CUDAKernel, format: ElementFormat = .fp32, grid: Int, gridY: Int = 1, block: Int,
                sharedBytes: Int = 0, _ args: [KernelArg]) {
        bind()
        precondition(grid > 0 && gridY > 0 && block > 0, "empty launch of \(kernel.rawValue)")
        let function = format == .fp32 ? functions[kernel] : bfloat16Functions[kernel]
        guard let function else { fatalError("\(kernel.rawValue) has no instance over bfloat16 activations") }
        // The driver copies each argument by the size of the kernel's parameter: a wrong list is garbage on the GPU,
        // so it stops here, in every build (the check costs a comparison of a few enums per launch).
        let parameters = kernel.parameters
        if args.count != parameters.count || zip(args, parameters).contains(where: { $0.kind != $1 }) {
            fatalError("launch of \(kernel.rawValue) with arguments (\(args.map(\.kind.rawValue).joined(separator: ", "))); "
                + "the kernel takes (\(parameters.map(\.rawValue).joined(separator: ", ")))")
        }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(args.count, 1) * 8, alignment: 8)
        let params = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(args.count, 1))
        defer { storage.deallocate(); params.deallocate() }
        for (i, a) in args.enumerated() {
            let slot = storage + i * 8
            switch a {
            case .pointer(let v): slot.storeBytes(of: v, as: UInt64.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            case .double(let v): slot.storeBytes(of: v, as: Double.self)
            }
            params[i] = slot
        }
        queuedWork += 1
        check(ifcn_cu_launch(function, UInt32(grid), UInt32(gridY), 1, UInt32(block), 1, 1,
                             UInt32(sharedBytes), stream, params), "cuLaunchKernel(\(kernel.rawValue))")
    }

    /// Grow-only device scratch memory for `slot`.
    func workspace(_ slot: WorkspaceSlot, bytes: Int) -> UInt64 {
        if let w = workspaces[slot], w.bytes >= bytes { return w.address }
        if let w = workspaces[slot] { deviceFree(w.address, bytes: w.bytes) }
        let n = max(bytes, 256)
        let address = deviceAllocate(bytes: n)
        workspaces[slot] = (address, n)
        return address
    }

    /// Bytes `slot` holds now (0: none).
    func heldWorkspaceBytes(_ slot: WorkspaceSlot) -> Int { workspaces[slot]?.bytes ?? 0 }

    /// Gives `slot`'s memory back to the device (waiting for the stream first); the next `workspace` call for it
    /// allocates afresh.
    func releaseWorkspace(_ slot: WorkspaceSlot) {
        guard let w = workspaces.removeValue(forKey: slot) else { return }
        deviceFree(w.address, bytes: w.bytes)
    }

    /// Waits for the stream and copies `count` values of type `T` (doubles, 64-bit hashes) to the host.
    func read<T: BitwiseCopyable>(_ address: UInt64, count: Int, as type: T.Type) -> [T] {
        bind()
        let out = [T](unsafeUninitializedCapacity: count) { buffer, n in
            check(ifcn_cu_memcpy_dtoh(buffer.baseAddress!, address, count * MemoryLayout<T>.stride, stream), "cuMemcpyDtoHAsync")
            n = count
        }
        synchronize()
        return out
    }

    /// Waits for the stream and copies `count` doubles to the host.
    func readDoubles(_ address: UInt64, count: Int) -> [Double] { read(address, count: count, as: Double.self) }
}

extension CUDABackend {
    /// The size of a pinned upload slot at most (a larger upload goes in chunks), and how many slots there are:
    /// a training step uploads four patch volumes (image, memory, target, weight), 8 MiB each at P = 128.
    /// `IFCN_CUDA_UPLOAD_SLOT_BYTES` sets a smaller size (the emulator's tests use a few KiB, so that one step's
    /// uploads go round the slots several times and every refill has to wait for its copy), or 0 for no slots:
    /// every upload straight from the caller's pageable memory, as before (the device check times both).
    /// `Backends.make` refuses a bad value before any work, so here it cannot be one. (Not `(try? ...) ?? 16 MiB`:
    /// that would turn the nil which 0 asks for back into 16 MiB.)
    static let pinnedSlotBytes: Int? = {
        do { return try uploadSlotBytes() } catch { return largestUploadSlot }
    }()
    static let largestUploadSlot = 16 << 20
    public static let uploadSlotEnvironmentKey = "IFCN_CUDA_UPLOAD_SLOT_BYTES"

    /// The pinned upload slots' size `environment` asks for: 16 MiB when unset or empty, nil (no slots) for 0,
    /// else a whole number of bytes from 256 to 16 MiB; anything else is an error naming the value.
    public static func uploadSlotBytes(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int? {
        guard let text = environment[uploadSlotEnvironmentKey], !text.isEmpty else { return largestUploadSlot }
        guard let n = Int(text), n == 0 || (256...largestUploadSlot).contains(n) else {
            throw CUDAError("\(uploadSlotEnvironmentKey)='\(text)' is not 0 (no pinned slots) or a number of bytes from 256 to \(largestUploadSlot)")
        }
        return n == 0 ? nil : n
    }
    static let pinnedUploadSlots = 4
    /// Uploads of at least this many bytes go through the pinned slots; smaller ones (a few values) straight from
    /// the caller's memory.
    static let pinnedUploadMinimum = pinnedSlotBytes.map { min(64 << 10, $0) } ?? Int.max
    /// Doubles `trainingLoss` writes: lambda * fp, fn, completeness, its cross-entropy, three overlap counts.
    static let trainingScalarCount = 7
}
