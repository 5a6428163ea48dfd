import Foundation
import IFCNEngine
import IFCNTestSupport
import IFCNTraining
@testable import IFCNVolume
import XCTest

/// `ifcn train` on the memory-mapped training store: the same training as the in-memory path of
/// folders without a store, a clear error for a damaged store, and a data set larger than memory.
final class StoreTrainingTests: XCTestCase {
    static let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-store-tests-\(getpid())")

    override class func tearDown() {
        try? FileManager.default.removeItem(at: scratch)
        super.tearDown()
    }

    func path(_ name: String) -> String { Self.scratch.appendingPathComponent(name).path }

    func trainArgs(_ data: String, _ out: String, iterations: Int = 10, extra: [String] = []) -> [String] {
        ["train", "--data", data, "--output", out, "--channels", "4", "--patch", "16", "--iterations", "\(iterations)",
         "--iters-per-epoch", "5", "--threads", "1", "--seed", "5", "--progress-seconds", "1000"] + extra
    }

    func mpirun(_ ranks: Int, _ args: [String]) throws -> ProcessResult {
        guard let mpirun = TestPaths.tool("mpirun") else { throw XCTSkip("mpirun is not installed") }
        return try ProcessRunner.run(mpirun, ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none",
                                              try TestPaths.ifcnBinary().path] + args, timeout: 300)
    }

    func parameters(_ file: String) throws -> [Float] { try SafeTensorsFile(path: file).floats("parameters") }

    /// A folder as an older ifcn wrote it: no store/, no `store` entries in dataset.json.
    func removeStore(_ dir: String) throws {
        let url = URL(fileURLWithPath: dir + "/dataset.json")
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        json["storeVersion"] = nil
        json["cases"] = try XCTUnwrap(json["cases"] as? [[String: Any]]).map { c in var c = c; c["store"] = nil; return c }
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        try FileManager.default.removeItem(atPath: dir + "/store")
    }

    /// Two ranks reading one store draw the samples of the in-memory path: the weights after 10
    /// iterations are bit-identical to those trained on the same folder without its store.
    func testTwoRanksOnTheStoreTrainExactlyLikeTheInMemoryPath() throws {
        let ifcn = try TestPaths.ifcnBinary()
        let raw = path("raw"), data = path("data"), old = path("old")
        XCTAssertEqual(try ProcessRunner.run(ifcn, ["synth", "--output", raw, "--cases", "5", "--seed", "11"], timeout: 120).status, 0)
        let p = try ProcessRunner.run(ifcn, ["preprocess", "--input", raw, "--output", data, "--spacing", "4", "--seed", "1"], timeout: 300)
        XCTAssertEqual(p.status, 0, p.summary)
        try FileManager.default.copyItem(atPath: data, toPath: old)
        try removeStore(old)

        let mapped = try mpirun(2, trainArgs(data, path("run-store"), extra: ["--dump-weights", path("w-store")]))
        XCTAssertEqual(mapped.status, 0, mapped.summary)
        XCTAssertFalse(mapped.stdout.contains("no training store"), mapped.summary)
        XCTAssertTrue(mapped.stdout.contains("first step starts"), mapped.summary)
        let memory = try mpirun(2, trainArgs(old, path("run-old"), extra: ["--dump-weights", path("w-old")]))
        XCTAssertEqual(memory.status, 0, memory.summary)
        XCTAssertTrue(memory.stdout.contains("have no training store"), memory.summary)
        let a = try parameters(path("w-store.rank0.safetensors")), b = try parameters(path("w-old.rank0.safetensors"))
        XCTAssertEqual(a, try parameters(path("w-store.rank1.safetensors")))
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "training on the store differs from the in-memory path")
        // validation scored the same scans
        let metrics = { (run: String) in try String(contentsOfFile: self.path(run) + "/metrics.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["val_dice"] as? Double } }
        XCTAssertEqual(try metrics("run-store"), try metrics("run-old"))

        // `ifcn store build` converts the old folder once; then it trains from the store, to the same weights
        let built = try ProcessRunner.run(ifcn, ["store", "build", "--data", old], timeout: 120)
        XCTAssertEqual(built.status, 0, built.summary)
        let again = try mpirun(2, trainArgs(old, path("run-built"), extra: ["--dump-weights", path("w-built")]))
        XCTAssertEqual(again.status, 0, again.summary)
        XCTAssertFalse(again.stdout.contains("no training store"), again.summary)
        XCTAssertEqual(try parameters(path("w-built.rank0.safetensors")), a)

        // a truncated store file stops training before it starts, naming the file
        let truncated = old + "/store/synth001.ifcs"
        XCTAssertEqual(truncate(truncated, 8192), 0)
        let bad = try mpirun(2, trainArgs(old, path("run-bad")))
        XCTAssertNotEqual(bad.status, 0, bad.summary)
        XCTAssertTrue(bad.stderr.contains(truncated + ": training store file is truncated"), bad.summary)
        XCTAssertFalse(bad.stdout.contains("epoch 1"), bad.summary)
    }

    /// A data set whose store is larger than this machine's memory trains, touching only the
    /// sampled patches: one case on a grid of more voxels than RAM holds bytes (a sparse file), with a
    /// synthetic spine written into one corner.
    func testADataSetLargerThanMemoryTrains() throws {
        let meminfo = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let memTotalKB = try XCTUnwrap(meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
            .flatMap { Int($0.split(separator: " ")[1]) })
        let spine = SyntheticSpine.generate(seed: 4)
        let image = try resampleToCanonical(spine.image, spacing: 4, interpolation: .linear, fill: -1000)
        let labels = try resampleToCanonical(spine.labels, spacing: 4)
        let weights = distanceWeights(labels: labels)
        let small = image.grid.size
        let nx = 2048, ny = 2048, perVoxel = 2 + 1 + 4
        let nz = max(small.z, Int((1.25 * Double(memTotalKB) * 1024 / Double(nx * ny * perVoxel)).rounded(.up)))
        let grid = Grid.canonical(size: SIMD3(nx, ny, nz), spacing: SIMD3(repeating: 4), origin: SIMD3(repeating: 0))
        let types: [VoxelType] = [.int16, .uint8, .float32]
        let (offsets, total) = CaseStore.layout(count: grid.count, image: types[0], labels: types[1], weights: types[2])
        XCTAssertGreaterThan(total, memTotalKB * 1024)

        let dir = path("huge")
        try FileManager.default.createDirectory(atPath: dir + "/store", withIntermediateDirectories: true)
        let file = dir + "/store/huge.ifcs"
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        guard ftruncate(fd, off_t(total)) == 0 else { close(fd); throw XCTSkip("cannot create a sparse file of \(total) bytes here") }
        func put(_ bytes: [UInt8], _ offset: Int) { bytes.withUnsafeBytes { XCTAssertEqual(pwrite(fd, $0.baseAddress, $0.count, off_t(offset)), $0.count) } }
        put(CaseStore.header(size: grid.size, types: types, offsets: offsets, total: total), 0)
        let shift = SIMD3(nx - small.x - 3, 40, nz - small.z)  // the spine sits against the far corner
        let sections = [VoxelCoding.encode(image.voxels, as: types[0]), VoxelCoding.encode(labels.voxels.map { Float($0) }, as: types[1]),
                        VoxelCoding.encode(weights.voxels, as: types[2])]
        for z in 0..<small.z { for y in 0..<small.y {
            let src = (z * small.y + y) * small.x
            let dst = grid.linearIndex(shift.x, shift.y + y, shift.z + z)
            for k in 0..<3 {
                let b = types[k].byteSize
                put(Array(sections[k][(src * b)..<((src + small.x) * b)]), offsets[k] + dst * b)
            }
        } }
        close(fd)
        let vertebrae = VertebraInfo.collect(from: labels).map { v -> VertebraInfo in
            var v = v; v.bboxMin &+= shift; v.bboxMax &+= shift; v.centroidIndex += SIMD3<Double>(shift); return v
        }
        let entry = CaseStoreEntry(file: "store/huge.ifcs", bytes: total, image: types[0], labels: types[1], weights: types[2])
        let manifest = DatasetManifest(spacing: 4, intensityOffset: 0, seed: 0, validationFraction: 0, crop: .none,
                                       cases: [CaseEntry(name: "huge", image: "images/huge.nii.gz", label: "labels/huge.nii.gz",
                                                         weight: "weights/huge.nii.gz", split: .train, grid: grid, vertebrae: vertebrae,
                                                         store: entry)])
        try manifest.save(to: dir)

        let r = try mpirun(2, trainArgs(dir, path("run-huge")))
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdout.contains("epoch 2  iter 10"), r.summary)
        XCTAssertTrue(r.stdout.contains("on 1 cases"), r.summary)
        // every rank's peak RSS (its own VmHWM, logged at the end) stays far below the mapped size
        let peaks = r.stdout.split(separator: "\n").filter { $0.contains(": peak RSS ") }
            .compactMap { Int($0.components(separatedBy: "peak RSS ")[1].split(separator: " ")[0]) }
        XCTAssertEqual(peaks.count, 2, r.summary)
        for p in peaks { XCTAssertLessThan(p, 1024, "a rank's peak RSS is \(p) MB for a \(total)-byte store") }
        var st = stat()
        XCTAssertEqual(stat(file, &st), 0)
        XCTAssertLessThan(Int(st.st_blocks) * 512, 64 << 20, "the sparse store occupies \(Int(st.st_blocks) * 512) bytes on disk")
        try FileManager.default.removeItem(atPath: dir)
    }
}
