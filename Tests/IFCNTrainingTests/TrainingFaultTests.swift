import Foundation
import IFCNEngine
import IFCNTestSupport
import XCTest

/// Faults of a running training job: bad numbers, divergence, a second job on the same folder,
/// SIGTERM (preemption), a stopped rank, a damaged checkpoint.
extension TrainingJobTests {
    func checkpointsDir(_ out: String) -> String { out + "/checkpoints" }
    func latest(_ out: String) -> String { out + "/checkpoints/latest.safetensors" }
    func iteration(_ path: String) throws -> Int? { try SafeTensorsFile(path: path).metadata["iteration"].flatMap(Int.init) }

    /// `args` with `option` set to `value` (as --option=value, so negative numbers parse as values).
    func setting(_ args: [String], _ option: String, _ value: String) -> [String] {
        var a = args
        if let i = a.firstIndex(of: option) { a.removeSubrange(i...(i + 1)) }
        return a + ["\(option)=\(value)"]
    }

    /// Every tensor of two checkpoints, floats and counters, is bit-identical.
    func assertSameTensors(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fa = try SafeTensorsFile(path: a), fb = try SafeTensorsFile(path: b)
        XCTAssertEqual(Set(fa.tensors.keys), Set(fb.tensors.keys), file: file, line: line)
        for (name, info) in fa.tensors {
            if info.dtype == .f32 {
                XCTAssertEqual(try fa.floats(name), try fb.floats(name), "\(name) differs", file: file, line: line)
            } else {
                XCTAssertEqual(try fa.uint64s(name), try fb.uint64s(name), "\(name) differs", file: file, line: line)
            }
        }
    }

    /// Rewrites the metadata of a safetensors file in place (the tensors stay as they are).
    func rewriteMetadata(_ path: String, _ change: (inout [String: String]) -> Void) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        var header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        var meta = try XCTUnwrap(header["__metadata__"] as? [String: String])
        change(&meta)
        header["__metadata__"] = meta
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(data.subdata(in: (8 + n)..<data.count))
        try out.write(to: URL(fileURLWithPath: path))
    }

    func testUnboundedNumbersAreRefusedNamingTheOption() throws {
        let d = try data()
        let ifcn = try TestPaths.ifcnBinary()
        let out = run(dir: "bounds")
        let bad = [("--threads", "0"), ("--threads", "-3"), ("--threads", "100000"), ("--lr", "0"), ("--lr", "-1e-3"),
                   ("--lr", "nan"), ("--lr", "inf"), ("--val-cases", "-1"), ("--keep", "-1"), ("--progress-seconds", "-5"),
                   ("--collective-timeout", "0"), ("--collective-timeout", "nan")]
        for (option, value) in bad {
            let r = try ProcessRunner.run(ifcn, setting(trainArgs(d, out, iterations: 5, epoch: 5), option, value), timeout: 60)
            XCTAssertNotEqual(r.status, 0, "\(option) \(value): \(r.summary)")
            XCTAssertTrue(r.stderr.contains("\(option) must"), "\(option) \(value): \(r.summary)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(option) \(value) created the run folder")
        }
        // A checkpoint whose iteration is negative is refused on --resume (no iter-N to fall back to).
        let ok = try ProcessRunner.run(ifcn, setting(trainArgs(d, out, iterations: 5, epoch: 5), "--keep", "0"), timeout: 120)
        XCTAssertEqual(ok.status, 0, ok.summary)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpointsDir(out)).filter { $0.hasPrefix("iter-") }, [])
        try rewriteMetadata(latest(out)) { $0["iteration"] = "-5" }
        let negative = try ProcessRunner.run(ifcn, trainArgs(d, out, iterations: 10, epoch: 5, extra: ["--resume"]), timeout: 120)
        XCTAssertEqual(negative.status, 1, negative.summary)
        XCTAssertTrue(negative.stderr.contains("iteration -5"), negative.summary)
    }

    /// --lr 1e30 makes the loss non-finite within a few steps: both ranks stop, naming the iteration,
    /// before the update, and no file on disk holds a non-finite number.
    func testDivergenceStopsAllRanksBeforeANonFiniteCheckpoint() throws {
        let d = try data()
        let out = run(dir: "diverge")
        let first = try mpirun(2, trainArgs(d, out, iterations: 5, epoch: 5))
        XCTAssertEqual(first.status, 0, first.summary)
        let before = try Data(contentsOf: URL(fileURLWithPath: latest(out)))
        let r = try mpirun(2, setting(trainArgs(d, out, iterations: 40, epoch: 5, extra: ["--resume"]), "--lr", "1e30"), timeout: 120)
        XCTAssertEqual(r.status, 1, r.summary)
        XCTAssertFalse(r.timedOut, r.summary)
        XCTAssertTrue(r.stderr.contains("training diverged at iteration "), r.summary)
        XCTAssertTrue(r.stderr.contains("the last checkpoint, iteration 5, holds finite weights"), r.summary)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: latest(out))), before, "latest was rewritten")
        for name in try FileManager.default.contentsOfDirectory(atPath: checkpointsDir(out)) where name.hasSuffix(".safetensors") {
            for (k, v) in try tensors(checkpointsDir(out) + "/" + name) { XCTAssertTrue(v.allSatisfy(\.isFinite), "\(name): \(k)") }
        }
        for line in try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), String(line))
        }
    }

    /// SIGTERM to a running job: it refuses a second job on its folder while it runs, then finishes the
    /// step, writes `latest` at that iteration and exits 75; --resume continues to the same weights as an
    /// uninterrupted run. A lock and a temporary file left by a killed job are cleared with a note.
    func testSIGTERMCheckpointsTheExactIterationAndResumesBitExactly() throws {
        let d = try data()
        let ifcn = try TestPaths.ifcnBinary()
        let out = run(dir: "sigterm"), straight = run(dir: "sigterm-straight")
        let job = try BackgroundProcess(ifcn, trainArgs(d, out, iterations: 1_000_000, epoch: 20))
        XCTAssertTrue(job.waitForOutput("epoch 1 ", timeout: 120), job.stdout + job.stderr)
        let rival = try ProcessRunner.run(ifcn, trainArgs(d, out, iterations: 5, epoch: 5), timeout: 60)
        XCTAssertEqual(rival.status, 1, rival.summary)
        XCTAssertTrue(rival.stderr.contains("\(out) is in use by another ifcn train (host "), rival.summary)
        XCTAssertTrue(rival.stderr.contains("pid \(job.pid))"), rival.summary)
        job.send(SIGTERM)
        let stopped = job.finish(timeout: 60)
        XCTAssertEqual(stopped.status, 75, stopped.summary)
        let at = try XCTUnwrap(try iteration(latest(out)))
        XCTAssertTrue(stopped.stdout.contains("stopped by SIGTERM after iteration \(at) of 1000000"), stopped.summary)
        XCTAssertGreaterThan(at, 20)
        // a job killed while writing leaves its lock file and a temporary file
        try "otherhost 4242\n".write(toFile: out + "/.lock", atomically: false, encoding: .utf8)
        let tmp = checkpointsDir(out) + "/.latest.safetensors.tmp-DEADBEEF"
        FileManager.default.createFile(atPath: tmp, contents: Data(count: 100))
        let resumed = try ProcessRunner.run(ifcn, trainArgs(d, out, iterations: at + 10, epoch: 20, extra: ["--resume"]), timeout: 300)
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertTrue(resumed.stdout.contains("taking over a stale lock of host otherhost, pid 4242"), resumed.summary)
        XCTAssertTrue(resumed.stdout.contains("removed 1 temporary file(s) of an interrupted write: .latest.safetensors.tmp-DEADBEEF"), resumed.summary)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp))
        let whole = try ProcessRunner.run(ifcn, trainArgs(d, straight, iterations: at + 10, epoch: 20), timeout: 300)
        XCTAssertEqual(whole.status, 0, whole.summary)
        try assertSameTensors(latest(out), latest(straight))
    }

    /// SIGTERM reaching one rank of two (as mpirun or Slurm deliver it, at any moment) stops both at the
    /// same step; the resumed run ends bit-identical to an uninterrupted one, and iter-N checkpoints are
    /// files of their own, not links to `latest`.
    func testSIGTERMOnOneRankStopsBothAndResumesBitExactly() throws {
        let d = try data()
        let out = run(dir: "sigterm2"), straight = run(dir: "sigterm2-straight")
        let stopped = try mpirun(2, trainArgs(d, out, iterations: 20, epoch: 5, extra: ["--inject-signal", "1:7:TERM"]))
        XCTAssertEqual(stopped.status, 75, stopped.summary)
        let at = try XCTUnwrap(try iteration(latest(out)))
        XCTAssertTrue((7...8).contains(at), "stopped at \(at)")
        XCTAssertTrue(stopped.stdout.contains("stopped by SIGTERM after iteration \(at) of 20"), stopped.summary)
        var info = stat()
        XCTAssertEqual(stat(latest(out), &info), 0)
        XCTAssertEqual(info.st_nlink, 1, "latest has hard links")
        let resumed = try mpirun(2, trainArgs(d, out, iterations: 20, epoch: 5, extra: ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        let whole = try mpirun(2, trainArgs(d, straight, iterations: 20, epoch: 5))
        XCTAssertEqual(whole.status, 0, whole.summary)
        try assertSameTensors(latest(out), latest(straight))
    }

    /// Under mpirun the stop signal is SIGUSR1 (mpirun kills ranks a second after passing SIGTERM on, but
    /// passes SIGUSR1 on and waits): both ranks stop at one step with a checkpoint, and mpirun exits 75.
    func testSIGUSR1ToMpirunStopsTheJobWithACheckpoint() throws {
        let d = try data()
        guard let mpirun = TestPaths.tool("mpirun") else { throw XCTSkip("mpirun is not installed") }
        let out = run(dir: "sigusr1")
        let job = try BackgroundProcess(mpirun, ["-np", "2", "--oversubscribe", "--bind-to", "none", try TestPaths.ifcnBinary().path]
                                        + trainArgs(d, out, iterations: 1_000_000, epoch: 20))
        XCTAssertTrue(job.waitForOutput("epoch 1 ", timeout: 120), job.stdout + job.stderr)
        job.send(SIGUSR1)
        let stopped = job.finish(timeout: 60)
        XCTAssertEqual(stopped.status, 75, stopped.summary)
        let at = try XCTUnwrap(try iteration(latest(out)))
        XCTAssertTrue(stopped.stdout.contains("stopped by SIGUSR1 after iteration \(at) of 1000000"), stopped.summary)
    }

    /// launch/slurm.sbatch with stand-ins for srun and scontrol: USR1 ahead of the time limit stops the
    /// ranks with a checkpoint and requeues the job; the requeued job resumes.
    func testSlurmScriptStopsRequeuesAndResumes() throws {
        let d = try data()
        guard let bash = TestPaths.tool("bash") else { throw XCTSkip("no bash") }
        let stubs = run(dir: "slurm-stubs"), out = run(dir: "slurm-run")
        try FileManager.default.createDirectory(atPath: stubs, withIntermediateDirectories: true)
        try "#!/usr/bin/env bash\nwhile [[ \"$1\" == --* ]]; do shift; done\nexec \"$@\"\n".write(toFile: stubs + "/srun", atomically: true, encoding: .utf8)
        try "#!/usr/bin/env bash\necho \"stub scontrol $*\"\n".write(toFile: stubs + "/scontrol", atomically: true, encoding: .utf8)
        for tool in ["srun", "scontrol"] { chmod(stubs + "/" + tool, 0o755) }
        var env = ProcessRunner.cleanEnvironment(["SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "localhost",
                                                  "SLURM_JOB_ID": "42", "SLURM_SUBMIT_DIR": TestPaths.repositoryRoot.path,
                                                  "IFCN_BIN": try TestPaths.ifcnBinary().path])
        env["PATH"] = stubs + ":" + (env["PATH"] ?? "/usr/bin:/bin")
        let script = TestPaths.repositoryRoot.appendingPathComponent("launch/slurm.sbatch").path
        let job = try BackgroundProcess(bash, [script] + trainArgs(d, out, iterations: 1_000_000, epoch: 20), environment: env)
        XCTAssertTrue(job.waitForOutput("epoch 1 ", timeout: 120), job.stdout + job.stderr)
        job.send(SIGUSR1)
        let stopped = job.finish(timeout: 60)
        XCTAssertEqual(stopped.status, 75, stopped.summary)
        XCTAssertTrue(stopped.stdout.contains("stub scontrol requeue 42"), stopped.summary)
        let at = try XCTUnwrap(try iteration(latest(out)))
        env["SLURM_RESTART_COUNT"] = "1"
        let again = try ProcessRunner.run(URL(fileURLWithPath: script), trainArgs(d, out, iterations: at + 5, epoch: 20), timeout: 120,
                                          environment: env)
        XCTAssertEqual(again.status, 0, again.summary)
        XCTAssertTrue(again.stdout.contains("adding --resume"), again.summary)
        XCTAssertEqual(try iteration(latest(out)), at + 5)
    }

    /// A rank that stops (SIGSTOP: a hung node) no longer leaves the others waiting forever: past
    /// --collective-timeout the job ends naming the rank, and the last checkpoint resumes.
    func testAStoppedRankEndsTheJobNamingIt() throws {
        let d = try data()
        let out = run(dir: "stopped-rank")
        let r = try mpirun(3, trainArgs(d, out, iterations: 20, epoch: 2, extra: ["--inject-signal", "2:4:STOP", "--collective-timeout", "3"]),
                           timeout: 120)
        XCTAssertNotEqual(r.status, 0, r.summary)
        XCTAssertFalse(r.timedOut, "the job hung: \(r.summary)")
        XCTAssertLessThan(r.seconds, 60, r.summary)
        XCTAssertTrue(r.stderr.contains("rank(s) 2 did not reach collective #"), r.summary)
        XCTAssertTrue(r.stderr.contains("(during iteration 4)"), r.summary)
        XCTAssertEqual(try iteration(latest(out)), 2)
        let resumed = try mpirun(3, trainArgs(d, out, iterations: 4, epoch: 2, extra: ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        // rank 0 itself stopped: the others say so
        let root = try mpirun(2, trainArgs(d, run(dir: "stopped-root"), iterations: 20, epoch: 2,
                                           extra: ["--inject-signal", "0:4:STOP", "--collective-timeout", "2"]), timeout: 120)
        XCTAssertNotEqual(root.status, 0, root.summary)
        XCTAssertFalse(root.timedOut, "the job hung: \(root.summary)")
        XCTAssertTrue(root.stderr.contains("no go from rank 0 for collective #"), root.summary)
    }

    /// A damaged `latest` does not damage its iter-N copy; --resume falls back to it and says so.
    func testCorruptLatestFallsBackToTheNewestIterationCheckpoint() throws {
        let d = try data()
        let ifcn = try TestPaths.ifcnBinary()
        let out = run(dir: "corrupt")
        let first = try ProcessRunner.run(ifcn, trainArgs(d, out, iterations: 10, epoch: 5), timeout: 120)
        XCTAssertEqual(first.status, 0, first.summary)
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: latest(out)))
        try handle.truncate(atOffset: 5000)
        try handle.close()
        let copy = checkpointsDir(out) + "/iter-0000010.safetensors"
        XCTAssertEqual(try iteration(copy), 10, "the iter-N copy was damaged with latest")
        let resumed = try ProcessRunner.run(ifcn, trainArgs(d, out, iterations: 15, epoch: 5, extra: ["--resume"]), timeout: 120)
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertTrue(resumed.stdout.contains("falling back to \(copy)"), resumed.summary)
        XCTAssertTrue(resumed.stdout.contains("resumed from \(copy) at iteration 10"), resumed.summary)
        XCTAssertEqual(try iteration(latest(out)), 15)
    }
}
