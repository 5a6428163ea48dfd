import Foundation
@testable import IFCNTraining
import IFCNTestSupport
import XCTest

/// `--allreduce`: the choice between NCCL and MPI, and a rank that loses its device.
extension TrainingJobTests {
    /// Ranks on one GPU are found by (host, PCI address), whatever their ordinal or CUDA_VISIBLE_DEVICES.
    func testRanksSharingAGPUAreFoundByHostAndPCIAddress() {
        let a = GradientAveraging.gpuKey(host: "node1", pci: "00000000:3b:00")
        let b = GradientAveraging.gpuKey(host: "node1", pci: "00000000:5e:00")
        let c = GradientAveraging.gpuKey(host: "node2", pci: "00000000:3b:00")
        XCTAssertEqual(a, GradientAveraging.gpuKey(host: "node1", pci: "00000000:3b:00"))
        XCTAssertNotEqual(a, b)
        XCTAssertNotEqual(a, c)
        for k in [a, b, c] { XCTAssertTrue(k > 0 && k < 0x1p53 && k == k.rounded(), "\(k) is not an exact integer") }
        let keys = [a, b, a, c, 0, 0]
        XCTAssertEqual(GradientAveraging.ranksSharing(keys: keys, rank: 0), [2])
        XCTAssertEqual(GradientAveraging.ranksSharing(keys: keys, rank: 2), [0])
        XCTAssertEqual(GradientAveraging.ranksSharing(keys: keys, rank: 1), [])
        XCTAssertEqual(GradientAveraging.ranksSharing(keys: keys, rank: 4), [], "CPU ranks share no GPU")
    }

    /// `--allreduce nccl` where NCCL cannot run stops every rank with the first rank's reason (no rank left
    /// waiting); `auto` says it averages through MPI, and `mpi` trains bit-identically to it on the CPU.
    func testAllreduceChoiceOnTheCPU() throws {
        let d = try data()
        let refused = try mpirun(2, trainArgs(d, run(dir: "nccl-cpu"), iterations: 4, epoch: 2,
                                              extra: ["--backend", "cpu", "--allreduce", "nccl"]), timeout: 120)
        XCTAssertNotEqual(refused.status, 0, refused.summary)
        XCTAssertFalse(refused.timedOut, refused.summary)
        XCTAssertTrue(refused.stderr.contains("--allreduce nccl cannot be used (rank 0: the backend is cpu, not CUDA); use --allreduce mpi or auto"),
                      refused.summary)
        let auto = try mpirun(2, trainArgs(d, run(dir: "allreduce-auto"), iterations: 4, epoch: 2,
                                           extra: ["--backend", "cpu", "--dump-weights", run(dir: "allreduce-auto") + "/w"]))
        XCTAssertEqual(auto.status, 0, auto.summary)
        XCTAssertTrue(auto.stdout.contains("gradients averaged by MPI allreduce\n"), auto.summary)
        let mpi = try mpirun(2, trainArgs(d, run(dir: "allreduce-mpi"), iterations: 4, epoch: 2,
                                          extra: ["--backend", "cpu", "--allreduce", "mpi", "--dump-weights", run(dir: "allreduce-mpi") + "/w"]))
        XCTAssertEqual(mpi.status, 0, mpi.summary)
        XCTAssertEqual(try tensors(run(dir: "allreduce-auto") + "/w.rank0.safetensors"),
                       try tensors(run(dir: "allreduce-mpi") + "/w.rank0.safetensors"))
    }

    /// A rank whose device fails mid-run (the path a CUDA driver error takes: `DeviceFailure`) ends the whole
    /// job at once, naming rank, host and device; the last checkpoint resumes.
    func testARankThatLosesItsDeviceEndsTheJobNamingIt() throws {
        let d = try data()
        let out = run(dir: "device-lost")
        let r = try mpirun(2, trainArgs(d, out, iterations: 20, epoch: 5, extra: ["--inject-device-failure", "1:7"]), timeout: 120)
        XCTAssertNotEqual(r.status, 0, r.summary)
        XCTAssertFalse(r.timedOut, "the job hung: \(r.summary)")
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        XCTAssertTrue(r.stderr.contains("rank 1 of 2 on host \(host)"), r.summary)
        XCTAssertTrue(r.stderr.contains("lost the CPU (1 thread(s)): iteration 7 failed: injected device failure"), r.summary)
        XCTAssertTrue(r.stderr.contains("The last checkpoint (iteration 5 in \(latest(out))) stays resumable: run the same command with --resume"),
                      r.summary)
        XCTAssertEqual(try iteration(latest(out)), 5)
        let resumed = try mpirun(2, trainArgs(d, out, iterations: 10, epoch: 5, extra: ["--resume"]))
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertEqual(try iteration(latest(out)), 10)
    }
}
