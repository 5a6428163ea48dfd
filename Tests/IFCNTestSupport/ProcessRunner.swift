// Shared by the test targets that run the `ifcn` executable (real mpirun jobs, CLI checks).
import Foundation
import XCTest

/// The result of a finished (or timed-out) child process.
public struct ProcessResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var timedOut: Bool
    public var seconds: Double

    public var summary: String { "exit \(status)\(timedOut ? " (timed out)" : "") after \(seconds)s\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

public enum TestPaths {
    /// The repository root (two levels above this file's directory).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `ifcn` executable built next to the test bundle (.build/<triple>/<config>/ifcn), or $IFCN_BIN.
    public static func ifcnBinary() throws -> URL {
        let fm = FileManager.default
        if let override = ProcessInfo.processInfo.environment["IFCN_BIN"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        let starts = [
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath(),
            Bundle.main.bundleURL.resolvingSymlinksInPath(),
        ]
        for start in starts {
            var directory = start.deletingLastPathComponent()
            for _ in 0..<5 {
                let candidate = directory.appendingPathComponent("ifcn")
                var isDirectory: ObjCBool = false
                if fm.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                   fm.isExecutableFile(atPath: candidate.path) {
                    return candidate
                }
                directory = directory.deletingLastPathComponent()
            }
        }
        throw XCTSkip("the ifcn executable was not found next to the test bundle (\(starts[0].path)); "
            + "run `swift build` first or set IFCN_BIN")
    }

    /// The first executable named `name` on PATH (or in the usual system directories), if any.
    public static func tool(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        for directory in directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }
}

public enum ProcessRunner {
    /// Environment for child MPI jobs: this process's environment without the variables an in-process
    /// MPI singleton may have set (they would make mpirun think it is a child of another job),
    /// plus Open MPI's permission to run as root.
    public static func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !["OMPI_", "PMIX_", "ORTE_", "OPAL_"].contains { key.hasPrefix($0) }
        }
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Runs `executable arguments` with `timeout` seconds of wall time. The command runs under
    /// coreutils `timeout`, which kills its whole process group (mpirun and every rank) on expiry.
    public static func run(_ executable: URL, _ arguments: [String], timeout: Int,
                    environment: [String: String] = cleanEnvironment(),
                    directory: URL = TestPaths.repositoryRoot) throws -> ProcessResult {
        guard let timeoutTool = TestPaths.tool("timeout") else {
            throw XCTSkip("coreutils `timeout` is not available")
        }
        let fm = FileManager.default
        let scratch = fm.temporaryDirectory.appendingPathComponent("ifcn-test-\(UUID().uuidString)")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout"), errURL = scratch.appendingPathComponent("stderr")
        _ = fm.createFile(atPath: outURL.path, contents: nil)
        _ = fm.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)

        let process = Process()
        process.executableURL = timeoutTool
        process.arguments = ["--kill-after=10", "\(timeout)", executable.path] + arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outHandle
        process.standardError = errHandle
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let start = Date()
        try process.run()
        // Backstop in case `timeout` itself hangs.
        if done.wait(timeout: .now() + .seconds(timeout + 30)) == .timedOut {
            process.terminate()
            _ = done.wait(timeout: .now() + .seconds(10))
        }
        let seconds = Date().timeIntervalSince(start)
        try outHandle.close()
        try errHandle.close()
        let status = process.isRunning ? -1 : process.terminationStatus
        return ProcessResult(
            status: status,
            stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self),
            timedOut: status == 124 || status == 137 || status == -1,
            seconds: seconds)
    }
}
