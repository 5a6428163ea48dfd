import Foundation
import XCTest

/// A child process that runs while a test acts on it (sends it signals, starts a rival), with its
/// output collected in files that the test can read at any time.
public final class BackgroundProcess {
    public let process = Process()
    private let scratch: URL
    private let outURL: URL, errURL: URL
    private let outHandle: FileHandle, errHandle: FileHandle
    private let start = Date()

    public init(_ executable: URL, _ arguments: [String], environment: [String: String] = ProcessRunner.cleanEnvironment(),
                directory: URL = TestPaths.repositoryRoot) throws {
        let fm = FileManager.default
        scratch = fm.temporaryDirectory.appendingPathComponent("ifcn-bg-\(UUID().uuidString)")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        outURL = scratch.appendingPathComponent("stdout"); errURL = scratch.appendingPathComponent("stderr")
        _ = fm.createFile(atPath: outURL.path, contents: nil)
        _ = fm.createFile(atPath: errURL.path, contents: nil)
        outHandle = try FileHandle(forWritingTo: outURL); errHandle = try FileHandle(forWritingTo: errURL)
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outHandle
        process.standardError = errHandle
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(at: scratch)
    }

    public var pid: Int32 { process.processIdentifier }
    public var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    /// Waits until stdout contains `text` (true) or `timeout` seconds pass or the process ends (false).
    public func waitForOutput(_ text: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stdout.contains(text) { return true }
            if !process.isRunning { return stdout.contains(text) }
            usleep(50_000)
        }
        return false
    }

    /// Sends `signal` to the process.
    public func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits up to `timeout` seconds for the end (killing it past that) and returns the result.
    public func finish(timeout: Double) -> ProcessResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        let timedOut = process.isRunning
        if timedOut { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? outHandle.close(); try? errHandle.close()
        return ProcessResult(status: timedOut ? -1 : process.terminationStatus, stdout: stdout, stderr: stderr,
                             timedOut: timedOut, seconds: Date().timeIntervalSince(start))
    }
}
