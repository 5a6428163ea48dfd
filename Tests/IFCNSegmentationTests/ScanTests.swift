import XCTest
import IFCNCompute
import IFCNEngine
import IFCNVolume
@testable import IFCNSegmentation

/// segmentScan on arbitrary input grids, the network-backed path, patch placement and scan listing.
final class ScanTests: XCTestCase {
    /// An oblique, anisotropic grid over the middle of a synthetic scan.
    func obliqueInput(seed: UInt64) -> (image: Volume, labels: LabelVolume) {
        let c = SyntheticSpine.generate(seed: seed, size: SIMD3(96, 96, 80))
        let a = 0.35, b = 0.2  // rotations about z, then about x
        let rz: [Double] = [cos(a), -sin(a), 0, sin(a), cos(a), 0, 0, 0, 1]
        let rx: [Double] = [1, 0, 0, 0, cos(b), -sin(b), 0, sin(b), cos(b)]
        var d = [Double](repeating: 0, count: 9)
        for r in 0..<3 { for k in 0..<3 { for j in 0..<3 { d[r * 3 + k] += rz[r * 3 + j] * rx[j * 3 + k] } } }
        let size = SIMD3(50, 45, 40), spacing = SIMD3(1.3, 1.1, 2.7)
        // Centre the new grid on the scan's centre (the synthetic scan is centred on the world origin).
        var grid = Grid(size: size, spacing: spacing, origin: .zero, direction: d)
        let half = SIMD3<Double>(Double(size.x - 1), Double(size.y - 1), Double(size.z - 1)) / 2
        grid.origin = -grid.world(half)
        return (resample(c.image, onto: grid, interpolation: .linear, fill: -1000),
                resample(c.labels, onto: grid))
    }

    /// The labels come back on exactly the input grid, equal to the ground truth taken through the same
    /// canonical round trip.
    func testSegmentScanKeepsInputGeometry() throws {
        let spacing = 2.0, patch = 32
        let (image, labels) = obliqueInput(seed: 21)
        XCTAssertNotEqual(image.grid.direction, Grid.identity)
        let canonical = try canonicalGrid(covering: image.grid, spacing: spacing)
        let truthVolume = resample(labels, onto: canonical)
        let truth = CanonicalTruth(truthVolume)
        let nMin = SegmentationOptions().minVoxels(spacing: canonical.spacing)
        let found = truth.labels(atLeast: nMin)
        XCTAssertGreaterThanOrEqual(found.count, 3)

        let oracle = OracleModel(truth: truth, patch: patch, ignoreBelow: nMin)
        var options = SegmentationOptions()
        options.labelResampling = .nearest
        let result = try Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
            .segmentScan(image)
        XCTAssertEqual(result.labels.grid, image.grid)
        XCTAssertEqual(result.instances.count, found.count)

        // Expected: the found vertebrae numbered 1...K on the canonical grid, resampled back (nearest).
        var renumber = [Int32](repeating: 0, count: truth.voxels.count)
        for (i, l) in found.enumerated() { renumber[l] = Int32(i + 1) }
        let expectedCanonical = LabelVolume(grid: canonical, voxels: truthVolume.voxels.map { renumber[Int($0)] })
        let expected = resample(expectedCanonical, onto: image.grid)
        XCTAssertEqual(result.labels.voxels, expected.voxels)

        // Reports count voxels and centroids on the input grid.
        for r in result.instances {
            XCTAssertEqual(r.voxels, expected.voxels.filter { $0 == Int32(r.label) }.count)
            var sum = SIMD3<Double>(), n = 0.0
            let g = image.grid
            for z in 0..<g.size.z { for y in 0..<g.size.y { for x in 0..<g.size.x
                where expected.voxels[g.linearIndex(x, y, z)] == Int32(r.label) {
                sum += SIMD3(Double(x), Double(y), Double(z)); n += 1
            } } }
            let c = g.world(sum / n)
            for a in 0..<3 { XCTAssertEqual(r.centroidMM[a], c[a], accuracy: 1e-9) }
        }
    }

    /// Labels resampled by probability (the default) follow the anatomy on the scan's own grid better than
    /// the working grid's labels taken nearest: with a perfect model at 4 mm on a finer oblique scan, every
    /// vertebra's Dice against the scan's own ground truth is higher, and the instances are the same.
    func testProbabilityResamplingRemovesStaircases() throws {
        let spacing = 4.0, patch = 32
        let (image, labels) = obliqueInput(seed: 21)
        let canonical = try canonicalGrid(covering: image.grid, spacing: spacing)
        let truth = CanonicalTruth(resample(labels, onto: canonical))
        let nMin = SegmentationOptions().minVoxels(spacing: canonical.spacing)
        let found = truth.labels(atLeast: nMin)
        XCTAssertGreaterThanOrEqual(found.count, 3)
        var results: [LabelResampling: SegmentationResult] = [:]
        for mode in LabelResampling.allCases {
            var options = SegmentationOptions()
            options.labelResampling = mode
            let oracle = OracleModel(truth: truth, patch: patch, ignoreBelow: nMin)
            results[mode] = try Segmenter(model: oracle, info: try Fixture.info(patch: patch, spacing: spacing), options: options)
                .segmentScan(image)
        }
        let byProbability = try XCTUnwrap(results[.probability]), nearest = try XCTUnwrap(results[.nearest])
        XCTAssertEqual(byProbability.labels.grid, image.grid)
        XCTAssertEqual(byProbability.instances.count, found.count)
        XCTAssertEqual(nearest.instances.count, found.count)
        XCTAssertEqual(byProbability.evaluations, nearest.evaluations, "the probabilities come from evaluations already made")
        for (i, gt) in found.enumerated() {
            let p = Fixture.dice(byProbability.labels.voxels, Int32(i + 1), labels.voxels, Int32(gt))
            let n = Fixture.dice(nearest.labels.voxels, Int32(i + 1), labels.voxels, Int32(gt))
            XCTAssertGreaterThan(p, n, "vertebra \(gt): probability \(p), nearest \(n)")
        }
        for r in byProbability.instances {
            XCTAssertEqual(r.voxels, byProbability.labels.voxels.filter { $0 == Int32(r.label) }.count)
        }
    }

    /// The real network (random weights, C=2, P=16) through segmentScan: it runs, ends, and returns
    /// labels on the input grid that agree with the reports.
    func testNetworkBackedSegmentation() throws {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        let network = Network(config: config, backend: CPUBackend(threads: 2), seed: 3)
        let info = ModelInfo(config: config, spacingMM: 4, intensity: .paper)
        // Save and load the weights as the command does.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-seg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("model.safetensors").path
        try Checkpoint.save(network: network, info: info, to: path)
        let loaded = try Checkpoint.load(path: path)
        XCTAssertEqual(loaded.info, info)
        let reloaded = Network(config: loaded.info.config, backend: CPUBackend(threads: 2))
        Checkpoint.apply(loaded, to: reloaded)

        let (image, _) = obliqueInput(seed: 4)
        var options = SegmentationOptions()
        options.maxInstances = 8
        var lines: [String] = []
        let result = try Segmenter(network: reloaded, info: loaded.info, options: options).segmentScan(image) { lines.append($0) }
        XCTAssertEqual(result.labels.grid, image.grid)
        XCTAssertGreaterThanOrEqual(result.evaluations, PatchGrid(size: try canonicalGrid(covering: image.grid, spacing: 4).size,
                                                                  patch: 16).walk.count)
        XCTAssertLessThanOrEqual(result.instances.count, 8)
        XCTAssertEqual(result.instances.map(\.label), Array(0..<result.instances.count).map { $0 + 1 })
        let present = Set(result.labels.voxels)
        XCTAssertTrue(present.isSubset(of: Set((0...result.instances.count).map { Int32($0) })))
        for r in result.instances {
            XCTAssertEqual(r.voxels, result.labels.voxels.filter { $0 == Int32(r.label) }.count)
            XCTAssertTrue((0...1).contains(r.completeness))
        }
        XCTAssertTrue(lines.contains { $0.contains("evaluations") })
    }

    /// The network made to segment everything it sees (a large segmentation bias): every patch yields a
    /// fragment, so acceptance, memory and the superior-to-inferior renumbering run on the network path.
    func testNetworkThatSegmentsEverything() throws {
        let network = try Fixture.segmentingNetwork()
        let info = ModelInfo(config: network.config, spacingMM: 4, intensity: .paper)
        var options = SegmentationOptions()
        options.minVolumeMM3 = 64 * 20  // 20 voxels at 4 mm
        let (image, _) = obliqueInput(seed: 8)
        let canonical = try resampleToCanonical(image, spacing: 4, interpolation: .linear, fill: -1000)
        let segmenter = Segmenter(network: network, info: info, options: options)
        let result = segmenter.segmentCanonical(canonical)
        let k = result.instances.count
        XCTAssertGreaterThanOrEqual(k, 2)
        XCTAssertLessThan(k, options.maxInstances)
        XCTAssertEqual(result.instances.map(\.label), Array(1...k))
        for r in result.instances {
            XCTAssertGreaterThanOrEqual(r.voxels, 20)
            XCTAssertEqual(r.voxels, result.labels.voxels.filter { $0 == Int32(r.label) }.count)
            XCTAssertEqual(r.completeness, r.completeness.clamped(0, 1))
        }
        XCTAssertTrue(result.labels.voxels.allSatisfy { $0 >= 0 && $0 <= Int32(k) })
        let zs = result.instances.map { $0.centroidMM[2] }
        XCTAssertEqual(zs, zs.sorted(by: >))

        let scan = try segmenter.segmentScan(image)
        XCTAssertEqual(scan.labels.grid, image.grid)
        XCTAssertEqual(scan.instances.count, k)
        XCTAssertEqual(scan.evaluations, result.evaluations)
    }

    /// `scanStatistics` w: during a walk batch norm uses (1 - w) x the model's statistics + w x those measured on the
    /// grid positions' patches with an empty memory; the model's come back when the walk ends, so the next scan
    /// starts from them; w = 0 is the plain walk.
    func testScanStatisticsBlendTheModelsWithTheScansForOneWalk() throws {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        let network = Network(config: config, backend: CPUBackend(threads: 2), seed: 5, use: .inference)
        let info = ModelInfo(config: config, spacingMM: 4, intensity: .paper)
        let (image, _) = obliqueInput(seed: 8)
        let canonical = try resampleToCanonical(image, spacing: 4, interpolation: .linear, fill: -1000)
        let size = canonical.grid.size
        let normalised = canonical.voxels.map { info.intensity.apply($0) }
        let fill = info.intensity.apply(-1000)
        // Running statistics of a scan like this one, and a segmentation bias that puts about half of a patch above
        // 0.5 with them, so that what the walk finds depends on the statistics.
        let probe = NetworkPatchModel(network: network)
        probe.begin(image: normalised, size: size, fill: fill)
        probe.adaptStatistics(origins: [SIMD3(0, 0, 0), SIMD3(4, 4, 4)], weight: 1)
        let trained = network.readBuffers()
        probe.end()
        network.loadBuffers(trained)
        probe.begin(image: normalised, size: size, fill: fill)
        _ = probe.evaluate(origin: SIMD3(size.x / 2 - 8, size.y / 2 - 8, size.z / 2 - 8))
        let logits = network.readSegmentation().map { log(Double($0) / (1 - Double($0))) }.sorted()
        probe.end()
        var parameters = network.readParameters()
        let bias = try XCTUnwrap(network.parameterTable["seg.bias"])
        parameters[bias.offset] -= Float(logits[logits.count / 2])
        network.loadParameters(parameters)
        let own = network.readBuffers()
        let origins = PatchGrid(size: size, patch: network.config.patch).walk.map { $0 &- network.config.patch / 2 }
        XCTAssertGreaterThan(origins.count, 1)

        func adapted(_ weight: Double) -> [Float] {
            let model = NetworkPatchModel(network: network)
            model.begin(image: normalised, size: size, fill: fill)
            model.adaptStatistics(origins: origins, weight: weight)
            let statistics = network.readBuffers()
            model.end()
            XCTAssertEqual(network.readBuffers(), own, "the model's statistics are back after the walk")
            return statistics
        }
        let scan = adapted(1), quarter = adapted(0.25)
        XCTAssertEqual(adapted(0), own)
        XCTAssertNotEqual(scan, own)
        for i in own.indices {
            XCTAssertEqual(quarter[i], 0.75 * own[i] + 0.25 * scan[i], accuracy: 1e-6 * max(1, abs(scan[i])))
        }

        var options = SegmentationOptions()
        options.minVolumeMM3 = 64 * 20
        let plain = Segmenter(network: network, info: info, options: options).segmentCanonical(canonical)
        options.scanStatistics = 1
        var lines: [String] = []
        let adaptedWalk = Segmenter(network: network, info: info, options: options).segmentCanonical(canonical) { lines.append($0) }
        XCTAssertTrue(lines.contains { $0.hasPrefix("batch norm: the scan's statistics (\(origins.count) patches) weighted 1") }, "\(lines)")
        XCTAssertEqual(network.readBuffers(), own)
        XCTAssertNotEqual(plain.labels.voxels, adaptedWalk.labels.voxels, "the walk used the scan's statistics")
        options.scanStatistics = 0
        XCTAssertEqual(Segmenter(network: network, info: info, options: options).segmentCanonical(canonical).labels.voxels,
                       plain.labels.voxels)
    }

    /// The network evaluated on the backend's own copies of the scan and the memory (the path `segment` takes,
    /// on a GPU too) walks exactly as the same network on host patches: same evaluations, instances and labels,
    /// also through each instance's probabilities onto the input grid.
    func testBackendResidentWalkEqualsTheHostPatchWalk() throws {
        let config = try NetworkConfig(variant: .paper, channels: 2, patch: 16)
        // Built for training, which keeps every activation: the input is still there after the forward pass.
        let network = Network(config: config, backend: CPUBackend(threads: 2), seed: 5)
        let info = ModelInfo(config: config, spacingMM: 4, intensity: .paper)
        let (image, _) = obliqueInput(seed: 8)
        let canonical = try resampleToCanonical(image, spacing: 4, interpolation: .linear, fill: -1000)
        let size = canonical.grid.size, p = config.patch
        let normalised = canonical.voxels.map { info.intensity.apply($0) }
        let fill = info.intensity.apply(-1000)

        // The inputs the model gives the network: the scan's box and the memory's, on the backend; an accepted
        // fragment goes into the memory and the labels.
        let model = NetworkPatchModel(network: network)
        model.begin(image: normalised, size: size, fill: fill)
        let origin = SIMD3(size.x - 10, -3, size.z / 2)
        let first = model.evaluate(origin: origin)
        let probabilities = network.readSegmentation()
        model.accept(label: 3)
        let labels = model.readLabels()
        let second = model.evaluate(origin: origin)
        XCTAssertEqual(second.fragment.count, model.evaluate(origin: origin).fragment.count, "evaluations are repeatable")
        var imageIn = [Float](repeating: 0, count: p * p * p), memoryIn = imageIn
        network.backend.download(network.inputChannels.image, to: &imageIn)
        network.backend.download(network.inputChannels.memory, to: &memoryIn)
        var fragment = 0
        for pz in 0..<p { for py in 0..<p { for px in 0..<p {
            let x = origin.x + px, y = origin.y + py, z = origin.z + pz, i = px + p * (py + p * pz)
            let inside = (0..<size.x).contains(x) && (0..<size.y).contains(y) && (0..<size.z).contains(z)
            let index = x + size.x * (y + size.y * z)
            let above = inside && probabilities[i] > 0.5
            fragment += above ? 1 : 0
            XCTAssertEqual(imageIn[i], inside ? normalised[index] : fill)
            XCTAssertEqual(memoryIn[i], above ? 1 : 0)
            if inside { XCTAssertEqual(labels[index], above ? 3 : 0) }
        } } }
        XCTAssertEqual(first.fragment.count, fragment)
        XCTAssertGreaterThan(fragment, 0)
        XCTAssertEqual(labels.filter { $0 != 0 }.count, fragment)
        model.end()

        // A segmentation bias that puts about half of a patch above 0.5, so what is found depends on image and memory.
        let logits = probabilities.map { log(Double($0) / (1 - Double($0))) }.sorted()
        var parameters = network.readParameters()
        let bias = try XCTUnwrap(network.parameterTable["seg.bias"])
        parameters[bias.offset] -= Float(logits[logits.count / 2])
        network.loadParameters(parameters)
        var options = SegmentationOptions()
        options.minVolumeMM3 = 64 * 20
        let onBackend = Segmenter(network: network, info: info, options: options)
        let onHost = Segmenter(model: HostNetworkModel(network: network), info: info, options: options)
        let a = onBackend.segmentCanonical(canonical), b = onHost.segmentCanonical(canonical)
        XCTAssertGreaterThanOrEqual(a.instances.count, 2)
        XCTAssertEqual(a.evaluations, b.evaluations)
        XCTAssertEqual(a.instances.map(\.voxels), b.instances.map(\.voxels))
        XCTAssertEqual(a.instances.map(\.completeness), b.instances.map(\.completeness))
        XCTAssertEqual(a.labels.voxels, b.labels.voxels)
        let sa = try onBackend.segmentScan(image), sb = try onHost.segmentScan(image)
        XCTAssertEqual(sa.evaluations, sb.evaluations)
        XCTAssertEqual(sa.labels.voxels, sb.labels.voxels)
    }

    func testGridCentres() {
        XCTAssertEqual(PatchGrid.centres(along: 10, patch: 32), [5])
        XCTAssertEqual(PatchGrid.centres(along: 32, patch: 32), [16])
        XCTAssertEqual(PatchGrid.centres(along: 33, patch: 32), [16, 17])
        XCTAssertEqual(PatchGrid.centres(along: 100, patch: 32), [16, 32, 48, 64, 80, 84])
        let g = PatchGrid(size: SIMD3(10, 40, 100), patch: 32)
        XCTAssertEqual(g.walk.count, 1 * 2 * 6)
        XCTAssertEqual(g.walk.first, SIMD3(5, 16, 84))
        XCTAssertEqual(g.walk.last, SIMD3(5, 24, 16))
        // x (10 < P): always the centred patch; y (40): centres 16...24 keep the patch inside; z likewise 16...84
        XCTAssertEqual(g.clampedCentre(SIMD3(-3.2, 39.7, 50.5)), SIMD3(5, 24, 51))
        XCTAssertEqual(g.clampedCentre(SIMD3(.nan, 1e300, -.infinity)), SIMD3(5, 24, 16))
        for p in [SIMD3(-50.0, -50, -50), SIMD3(500.0, 500, 500), SIMD3(20.0, 20, 20)] {
            let o = g.origin(of: g.clampedCentre(p))
            XCTAssertEqual(o.x, -11)  // centred: (32 - 10) / 2 voxels of padding before the image
            XCTAssertTrue(o.y >= 0 && o.y + 32 <= 40 && o.z >= 0 && o.z + 32 <= 100, "\(o)")
        }
    }

    /// The backend's segmentation volumes, as the walk runs them: patch extraction pads with the fill value and
    /// copies the inside exactly; a fragment is the patch's voxels inside the image above 0.5; accepting it marks
    /// the memory and labels its unlabelled voxels; the memory's hash follows the memory under the patch.
    func testExtractAndFragment() {
        let size = SIMD3(5, 4, 3), p = 16, n = p * p * p
        let backend = CPUBackend(threads: 1)
        let image = TensorRef(buffer: backend.allocate(60))
        let mask = TensorRef(buffer: backend.allocate(PatchBox.maskElements(voxels: 60))), labels = TensorRef(buffer: backend.allocate(60))
        backend.upload((0..<60).map(Float.init), to: image)
        let patch = TensorRef(buffer: backend.allocate(n)), memory = TensorRef(buffer: backend.allocate(n))
        let origin = SIMD3(-6, -7, -8), box = PatchBox(scan: size, origin: origin, side: p)
        backend.extractPatch(image, box: box, fill: -1, into: patch)
        func patchIndex(_ v: Int) -> Int {
            let x: Int = v % 5 - origin.x, y: Int = (v / 5) % 4 - origin.y, z: Int = v / 20 - origin.z
            return x + p * (y + p * z)
        }
        var inside = 0
        for pz in 0..<p { for py in 0..<p { for px in 0..<p {
            let x = px + origin.x, y = py + origin.y, z = pz + origin.z, i = px + p * (py + p * pz)
            let isInside = (0..<5).contains(x) && (0..<4).contains(y) && (0..<3).contains(z)
            XCTAssertEqual(patch.host[i], isInside ? Float(x + 5 * (y + 4 * z)) : -1)
            inside += isInside ? 1 : 0
        } } }
        XCTAssertEqual(inside, 60)
        // A fragment keeps only voxels inside the image, above 0.5 (exactly 0.5 and NaN are not foreground).
        let prob = TensorRef(buffer: backend.allocate(n))
        backend.fill(prob, value: 0.9)
        prob.host[patchIndex(0)] = 0.5
        prob.host[patchIndex(1)] = .nan
        let f = backend.fragmentSums(prob, box: box, unlabelledIn: nil)
        XCTAssertEqual(f.count, 58)
        var total = SIMD3<Double>()
        for v in 2..<60 { total += SIMD3<Double>(Double(v % 5), Double((v / 5) % 4), Double(v / 20)) }
        let mean = total / 58
        XCTAssertEqual(f.centroid, mean)
        // Accepting: labels where none was, the whole fragment into the memory; its hash changes with it.
        labels.host.withMemoryRebound(to: Int32.self, capacity: 60) { $0[7] = 9 }
        let emptyHash = backend.maskHash(mask, box: box)
        XCTAssertEqual(backend.fragmentSums(prob, box: box, unlabelledIn: labels).count, 57)
        backend.acceptFragment(prob, box: box, mask: mask, labels: labels, label: 4)
        XCTAssertEqual(backend.fragmentSums(prob, box: box, unlabelledIn: labels).count, 0)
        let written = labels.host.withMemoryRebound(to: Int32.self, capacity: 60) { Array(UnsafeBufferPointer(start: $0, count: 60)) }
        XCTAssertEqual(written, [0, 0] + (2..<60).map { $0 == 7 ? 9 : 4 })
        backend.extractMaskPatch(mask, box: box, into: memory)
        XCTAssertEqual((0..<n).filter { memory.host[$0] == 1 }, (2..<60).map(patchIndex).sorted())
        XCTAssertEqual((0..<n).filter { memory.host[$0] != 0 && memory.host[$0] != 1 }, [])
        XCTAssertNotEqual(backend.maskHash(mask, box: box), emptyHash)
        // The hash depends only on the memory under the patch: a patch beside the scan sees none of it.
        XCTAssertEqual(backend.maskHash(mask, box: PatchBox(scan: size, origin: SIMD3(5, 0, 0), side: p)), emptyHash)
    }

    func testMinVoxels() {
        var o = SegmentationOptions()
        XCTAssertEqual(o.minVoxels(spacing: SIMD3(repeating: 1)), 1000)
        XCTAssertEqual(o.minVoxels(spacing: SIMD3(repeating: 4)), 16)
        XCTAssertEqual(o.minVoxels(spacing: SIMD3(repeating: 2)), 125)
        o.minVolumeMM3 = 37 * pow(1.7, 3)
        XCTAssertEqual(o.minVoxels(spacing: SIMD3(repeating: 1.7)), 37)
    }

    func testScanFilesAndCaseNames() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ifcn-scans-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["sub-verse005_ct.nii.gz", "sub-verse005_seg-vert_msk.nii.gz", "case1.mhd", "case1.raw",
                     "case1_label.mhd", "b_seg.nii", "c_msk.mha", ".hidden.nii", "notes.txt", "d.MHA"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: dir.appendingPathComponent(name).path, contents: Data()))
        }
        let files = try ScanFiles.list(dir.path).map { URL(fileURLWithPath: $0).lastPathComponent }
        XCTAssertEqual(files, ["case1.mhd", "d.MHA", "sub-verse005_ct.nii.gz"])
        XCTAssertEqual(ScanFiles.caseName("/x/sub-verse005_ct.nii.gz"), "sub-verse005")
        XCTAssertEqual(ScanFiles.caseName("/x/case1.mhd"), "case1")
        XCTAssertEqual(ScanFiles.caseName("scan.nii"), "scan")
        let single = dir.appendingPathComponent("case1.mhd").path
        XCTAssertEqual(try ScanFiles.list(single), [single])
        XCTAssertThrowsError(try ScanFiles.list(dir.appendingPathComponent("missing").path)) { e in
            XCTAssertTrue("\(e)".contains("missing"))
        }
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ScanFiles.list(empty.path)) { e in XCTAssertTrue("\(e)".contains("no scans")) }
    }
}

extension Double {
    func clamped(_ lo: Double, _ hi: Double) -> Double { Swift.min(Swift.max(self, lo), hi) }
}
