import Foundation
import IFCNCompute
import IFCNEngine
import XCTest

final class CheckpointTests: XCTestCase {
    func tmp(_ name: String) -> String { NSTemporaryDirectory() + "/\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    func testRoundTripWithTrainingStateAndPyTorchNames() throws {
        for variant in Variant.allCases {
            let config = try NetworkConfig(variant: variant, channels: 3, patch: 32)
            let net = Network(config: config, backend: CPUBackend(threads: 1), seed: 7)
            let adam = Adam(network: net)
            var rng = SeededGenerator(seed: 1)
            net.loadGradients(randomValues(net.parameters.count, &rng))
            adam.update()
            let info = ModelInfo(config: config, spacingMM: 4, intensity: .paper)
            let state = adam.readState()
            let path = tmp("ckpt.safetensors")
            defer { unlink(path) }
            try Checkpoint.save(network: net, info: info,
                                training: TrainingState(iteration: 42, adamStep: state.step, firstMoment: state.firstMoment,
                                                        secondMoment: state.secondMoment), to: path)
            let loaded = try Checkpoint.load(path: path)
            XCTAssertEqual(loaded.info, info)
            XCTAssertEqual(loaded.parameters, net.readParameters())
            XCTAssertEqual(loaded.buffers, net.readBuffers())
            XCTAssertEqual(loaded.training?.iteration, 42)
            XCTAssertEqual(loaded.training?.firstMoment, state.firstMoment)
            XCTAssertEqual(loaded.training?.secondMoment, state.secondMoment)
            let file = try SafeTensorsFile(path: path)
            let expected = variant == .paper ? ["down0.conv1.weight", "down0.bn1.running_var", "seg.bias", "fc.weight", "cls.0.bn2.bias"]
                                             : ["conv_initial.0.weight", "conv_rest.5.running_mean", "conv_final.3.bias", "dense.weight"]
            for n in expected { XCTAssertTrue(file.has(n), "missing \(n)") }
            let net2 = Network(config: config, backend: CPUBackend(threads: 1), seed: 99)
            Checkpoint.apply(loaded, to: net2)
            XCTAssertEqual(net2.readParameters(), net.readParameters())
        }
    }

    /// The same tensors and metadata give the same bytes, whatever order they were added in: checkpoints are
    /// written from dictionaries, whose order changes from process to process, and a repeated run must write
    /// identical files (`TrainingJobTests` compares a resumed run's checkpoint with an uninterrupted one's).
    func testTheSameTensorsGiveTheSameBytes() throws {
        let tensors: [(String, [Float], [Int])] = [("b.weight", [1, 2, 3, 4], [2, 2]), ("a.bias", [5], [1]), ("c", [6, 7], [2])]
        func encode(_ order: [Int]) throws -> Data {
            var w = SafeTensorsWriter()
            w.metadata = ["iteration": "3", "seed": "1"]
            for i in order { w.add(tensors[i].0, floats: tensors[i].1, shape: tensors[i].2) }
            w.add("count", int64s: [9], shape: [])
            return try w.encoded()
        }
        let first = try encode([0, 1, 2])
        for order in [[2, 1, 0], [1, 0, 2], [2, 0, 1]] { XCTAssertEqual(try encode(order), first, "\(order)") }
        let path = tmp("order.safetensors")
        defer { unlink(path) }
        try first.write(to: URL(fileURLWithPath: path))
        let file = try SafeTensorsFile(path: path)
        for (name, values, _) in tensors { XCTAssertEqual(try file.floats(name), values, name) }
    }

    func testReferenceStateDictLoadsWhenConfigIsGiven() throws {
        // A plain PyTorch export: state_dict names only, no ifcn metadata.
        let fx = try SafeTensorsFile(path: fixturePath("seed_c4_p32.safetensors"))
        var w = SafeTensorsWriter()
        for (name, info) in fx.tensors where name.hasPrefix("param/") || name.hasPrefix("buffer/") {
            w.add(String(name.split(separator: "/", maxSplits: 1)[1]), floats: try fx.floats(name), shape: info.shape)
        }
        let path = tmp("torch.safetensors")
        defer { unlink(path) }
        try w.write(to: path)
        XCTAssertThrowsError(try Checkpoint.load(path: path)) { e in
            XCTAssertTrue("\(e)".contains("--variant"), "\(e)")
        }
        let seed = try NetworkConfig(variant: .seed, channels: 4, patch: 32)
        let loaded = try Checkpoint.load(path: path, config: seed)
        XCTAssertEqual(loaded.info.intensity, .identity)
        XCTAssertEqual(loaded.parameters.count, Network(config: seed, backend: CPUBackend(threads: 1)).parameters.count)
        // wrong configuration: a clear error, not a crash
        XCTAssertThrowsError(try Checkpoint.load(path: path, config: try NetworkConfig(variant: .seed, channels: 8, patch: 32))) { e in
            XCTAssertTrue("\(e)".contains("shape"), "\(e)")
        }
        XCTAssertThrowsError(try Checkpoint.load(path: path, config: try NetworkConfig(variant: .paper, channels: 4, patch: 32))) { e in
            XCTAssertTrue("\(e)".contains("missing tensor"), "\(e)")
        }
    }

    func testMetadataMismatchIsAnError() throws {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        let net = Network(config: config, backend: CPUBackend(threads: 1))
        let path = tmp("c.safetensors")
        defer { unlink(path) }
        try Checkpoint.save(network: net, info: ModelInfo(config: config, spacingMM: 1, intensity: .paper), to: path)
        XCTAssertThrowsError(try Checkpoint.load(path: path, config: try NetworkConfig(variant: .paper, channels: 2, patch: 32)))
    }

    func testMalformedFilesGiveClearErrors() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: fixturePath("paper_c4_p16.safetensors")))
        var cases: [(String, Data)] = [
            ("empty", Data()),
            ("short", good.prefix(5)),
            ("truncated header", good.prefix(100)),
            ("truncated data", good.prefix(good.count - 1000)),
        ]
        var huge = good; huge.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        cases.append(("huge header length", huge))
        var garbage = good; garbage.replaceSubrange(8..<20, with: Data(repeating: 0x41, count: 12))
        cases.append(("garbage json", garbage))
        func file(_ header: String, payload: Int) -> Data {
            var d = Data(); var n = UInt64(header.utf8.count).littleEndian
            withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
            d.append(header.data(using: .utf8)!); d.append(Data(count: payload)); return d
        }
        cases.append(("bad dtype", file(#"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, payload: 4)))
        cases.append(("shape/bytes mismatch", file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}"#, payload: 4)))
        cases.append(("offsets outside", file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4000]}}"#, payload: 4)))
        cases.append(("negative shape", file(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, payload: 4)))
        cases.append(("overflowing shape", file(#"{"a":{"dtype":"F32","shape":[4294967295,4294967295,4294967295],"data_offsets":[0,4]}}"#, payload: 4)))
        for (what, data) in cases {
            XCTAssertThrowsError(try SafeTensorsFile(data: data, path: "x.safetensors"), what) { e in
                XCTAssertTrue("\(e)".hasPrefix("x.safetensors: "), "\(what): \(e)")
            }
        }
        // Wrong dtype for a tensor we need.
        let ints = file(#"{"seg.bias":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, payload: 8)
        let f = try SafeTensorsFile(data: ints, path: "y.safetensors")
        XCTAssertThrowsError(try f.floats("seg.bias")) { e in XCTAssertTrue("\(e)".contains("dtype"), "\(e)") }
        XCTAssertThrowsError(try f.floats("seg.weight")) { e in XCTAssertTrue("\(e)".contains("missing"), "\(e)") }
        XCTAssertThrowsError(try Checkpoint.load(path: "/nonexistent/ckpt.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/ckpt.safetensors"), "\(e)")
        }
    }
}
