import ArgumentParser
import Foundation
import IFCNEngine
import IFCNTraining
import IFCNVolume

/// `ifcn store`: the training store of a data set folder (docs/DATA.md).
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Build or measure the memory-mapped training store of a data set folder.",
        subcommands: [StoreBuildCommand.self, StoreBenchCommand.self])
}

/// `ifcn store build`: writes store/ for a folder preprocessed by an older ifcn.
struct StoreBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Write the training store (store/<case>.ifcs + the index in dataset.json) of a data set folder that has none.",
        discussion: "Reads each case's NIfTI volumes once; cases whose store file is already there are kept. `ifcn preprocess` writes the store itself.")

    @Option(help: "Preprocessed data set folder.") var data: String

    func run() throws {
        let start = Date()
        let m = try CaseStore.build(dataset: data) { line in print(line); fflush(nil) }
        let bytes = m.cases.compactMap { $0.store?.bytes }.reduce(0, +)
        print(String(format: "training store of %d cases, %.1f MB, in %.1f s -> %@/%@", m.cases.count, Double(bytes) / 1e6,
                     Date().timeIntervalSince(start), data, CaseStore.folder))
    }
}

/// `ifcn store bench`: patch read times from the mapped store (cold and warm page cache) against
/// the in-memory path.
struct StoreBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time opening the store and drawing training samples from it (cold and warm page cache) and from memory.",
        discussion: """
            Cold: each case's pages are dropped from the page cache (posix_fadvise DONTNEED) before every sample, so its
            rows come from the disk. Warm: the same samples again, after one untimed pass. --memory also loads the NIfTI volumes as training did
            before the store and times the same samples from memory.
            """)

    @Option(help: "Preprocessed data set folder with a training store.") var data: String
    @Option(help: "Patch size P.") var patch: Int = 128
    @Option(help: "Samples to draw (iterations 1...N of rank 0).") var samples: Int = 40
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Flag(help: "Apply the augmentations (else only the patch read).") var augment = false
    @Flag(help: "Also time the in-memory path (loads every NIfTI volume).") var memory = false

    func run() throws {
        var t = Date()
        let data = try TrainingData.load(from: self.data, maxValidationCases: 0)
        let open = Date().timeIntervalSince(t)
        guard data.training.allSatisfy({ if case .mapped = $0.storage { return true } else { return false } }) else {
            throw ValidationError("\(self.data) has no training store (run `ifcn store build --data \(self.data)` first)")
        }
        let augmentations: Set<Augmentation> = augment ? Set(Augmentation.allCases) : []
        func sampler(_ cases: [TrainingCase]) -> PatchSampler {
            PatchSampler(cases: cases, patch: patch, intensity: .paper, seed: seed, rank: 0, augmentations: augmentations)
        }
        let mapped = sampler(data.training)
        func evict() { for c in data.training { if case .mapped(let m) = c.storage { m.evictFromPageCache() } } }
        var cold: [Double] = [], warm: [Double] = []
        for it in 1...samples {
            evict()
            t = Date(); _ = mapped.sample(iteration: it); cold.append(Date().timeIntervalSince(t))
        }
        for it in 1...samples { _ = mapped.sample(iteration: it) }  // every sample's pages in the cache again
        for it in 1...samples { t = Date(); _ = mapped.sample(iteration: it); warm.append(Date().timeIntervalSince(t)) }
        let bytes = data.manifest.cases.compactMap { $0.store?.bytes }.reduce(0, +)
        print(String(format: "store: %d training cases, %.1f MB in all (%.1f MB per case); opened in %.3f s", data.training.count,
                     Double(bytes) / 1e6, Double(bytes) / 1e6 / Double(max(data.manifest.cases.count, 1)), open))
        func line(_ what: String, _ s: [Double]) -> String {
            let sorted = s.sorted()
            return String(format: "%@: mean %.2f ms, median %.2f ms, max %.2f ms per sample (P=%d, %d samples%@)", what,
                          1000 * s.reduce(0, +) / Double(s.count), 1000 * sorted[s.count / 2], 1000 * sorted.last!, patch,
                          s.count, augment ? ", augmented" : "")
        }
        print(line("mapped, cold page cache", cold))
        print(line("mapped, warm page cache", warm))
        let recompute = try weightRecomputeSeconds(data.training[0], spacing: data.manifest.spacing)
        print(String(format: "recomputing one patch's weights instead (exact EDT over the patch + %d voxels each side): %.0f ms",
                     weightMargin(data.manifest.spacing), 1000 * recompute))
        if memory {
            t = Date()
            let loaded = try data.training.map { c -> TrainingCase in
                guard case .mapped(let m) = c.storage else { return c }
                let e = data.manifest.cases.first { $0.name == c.name }!
                let dir = URL(fileURLWithPath: self.data)
                let image = try VolumeIO.read(dir.appendingPathComponent(e.image).path)
                let labels = try VolumeIO.readLabels(dir.appendingPathComponent(e.label).path)
                let weights = try VolumeIO.read(dir.appendingPathComponent(e.weight).path)
                _ = m
                return TrainingCase(name: c.name, image: image, labels: labels, weights: weights, vertebrae: c.vertebrae)
            }
            let load = Date().timeIntervalSince(t)
            let inMemory = sampler(loaded)
            // interleaved, so both paths see the same machine load
            var mem: [Double] = [], map: [Double] = [], same = 0
            for it in 1...samples {
                t = Date(); let a = inMemory.sample(iteration: it); mem.append(Date().timeIntervalSince(t))
                t = Date(); let b = mapped.sample(iteration: it); map.append(Date().timeIntervalSince(t))
                if a.image == b.image && a.weight == b.weight && a.target == b.target && a.memory == b.memory { same += 1 }
            }
            print(String(format: "in memory (NIfTI read and decompressed in %.1f s): ", load) + line("", mem).dropFirst(2))
            print(line("mapped, warm, interleaved with the in-memory samples", map))
            print("identical samples, mapped vs in memory: \(same) of \(samples)")
        }
    }

    /// Margin (voxels) beyond which a boundary changes a float32 weight no more: 8 exp(-d^2/36) < 2^-24 for d > 26 mm.
    func weightMargin(_ spacing: Double) -> Int { Int((26 / spacing).rounded(.up)) }

    /// Seconds to compute the weight map of a patch-sized block (+ margin) of `c`'s labels.
    func weightRecomputeSeconds(_ c: TrainingCase, spacing: Double) throws -> Double {
        let labels = try c.volumes().labels, g = c.grid
        let n = patch + 2 * weightMargin(spacing)
        let size = SIMD3(min(n, g.size.x), min(n, g.size.y), min(n, g.size.z))
        let v = c.vertebrae[c.vertebrae.count / 2]
        var lo = SIMD3<Int>()
        for a in 0..<3 { lo[a] = max(0, min(g.size[a] - size[a], (v.bboxMin[a] + v.bboxMax[a]) / 2 - size[a] / 2)) }
        var block = LabelVolume(grid: Grid.canonical(size: size, spacing: g.spacing, origin: SIMD3(repeating: 0)))
        for z in 0..<size.z { for y in 0..<size.y { for x in 0..<size.x {
            block[x, y, z] = labels[lo.x + x, lo.y + y, lo.z + z]
        } } }
        let t = Date()
        _ = distanceWeights(labels: block)
        return Date().timeIntervalSince(t)
    }
}
