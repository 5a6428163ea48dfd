import ArgumentParser
import Foundation
import IFCNVolume

/// `ifcn synth`: synthetic CT-like spine scans with vertebra labels (CSI naming).
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write synthetic spine CT scans (<case>.nii.gz, int16 HU) and labels (<case>_label.nii.gz, uint8).")

    @Option(help: "Output folder.")
    var output: String
    @Option(help: "Number of cases.")
    var cases: Int
    @Option(help: "Seed (case i uses seed + i).")
    var seed: UInt64 = 0
    @Option(help: "Voxel spacing X,Y,Z in mm.")
    var spacing: String = "0.8,0.8,2.0"
    @Option(help: "Volume size X,Y,Z in voxels.")
    var size: String = "96,96,60"

    static func triple<T: LosslessStringConvertible>(_ text: String, _ name: String, _: T.Type) throws -> [T] {
        let parts = text.split(separator: ",").map { T(String($0).trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0 != nil }) else {
            throw ValidationError("\(name) must be three comma-separated numbers, got '\(text)'")
        }
        return parts.compactMap { $0 }
    }

    func validate() throws {
        guard cases >= 1 else { throw ValidationError("--cases must be at least 1") }
        let s = try Self.triple(spacing, "--spacing", Double.self)
        guard s.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw ValidationError("--spacing must be positive") }
        let n = try Self.triple(size, "--size", Int.self)
        guard n.allSatisfy({ $0 >= 8 && $0 <= 1024 }) else { throw ValidationError("--size values must be in 8...1024") }
    }

    func run() throws {
        let s = try Self.triple(spacing, "--spacing", Double.self)
        let n = try Self.triple(size, "--size", Int.self)
        let start = Date()
        for i in 0..<cases {
            let t0 = Date()
            let name = "synth" + String(format: "%03d", i)
            let c = SyntheticSpine.generate(seed: seed &+ UInt64(i), size: SIMD3(n[0], n[1], n[2]),
                                            spacing: SIMD3(s[0], s[1], s[2]))
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try VolumeIO.write(c.image, to: output + "/" + name + ".nii.gz", as: .int16)
            try VolumeIO.write(c.labels, to: output + "/" + name + "_label.nii.gz", as: .uint8)
            print(String(format: "case %d/%d %@: %d vertebrae, %.2f s", i + 1, cases, name, c.vertebraCount,
                         Date().timeIntervalSince(t0)))
            fflush(nil)
        }
        print(String(format: "wrote %d cases to %@ in %.1f s", cases, output, Date().timeIntervalSince(start)))
    }
}
