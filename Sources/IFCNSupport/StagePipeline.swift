/// Takes items `0..<count` through three stages: `prepare(i)`, then `process(i, prepared)` on the calling thread,
/// then `finish(i, processed)`, whose value goes to `report(i, finished)` on the calling thread, in item order.
///
/// `overlapped` false: one item at a time, every stage on the calling thread (prepare, process, finish, report,
/// then the next item). `overlapped` true: while item i is processed, item i+1 is prepared on one background
/// thread (`BackgroundJob`) and item i-1 finished on another, so at most three items are in flight (one
/// prepared ahead, one processed, one being finished). Item i-1 is reported after item i's processing, just
/// before item i's finishing starts; the last item is reported before the call returns. `prepare` and `finish`
/// must be safe to run on other threads next to `process` (and `prepare` next to `finish`); every call of one
/// stage ends before the next call of that stage begins.
public func runStages<Prepared, Processed, Finished>(
    count: Int, overlapped: Bool,
    prepare: @escaping (_ item: Int) -> Prepared,
    process: (_ item: Int, Prepared) -> Processed,
    finish: @escaping (_ item: Int, Processed) -> Finished,
    report: (_ item: Int, Finished) -> Void
) {
    guard overlapped else {
        for i in 0..<count { report(i, finish(i, process(i, prepare(i)))) }
        return
    }
    guard count > 0 else { return }
    var next = BackgroundJob(label: "ifcn.stage.prepare") { prepare(0) }
    var finishing: (item: Int, job: BackgroundJob<Finished>)?
    for i in 0..<count {
        let prepared = next.wait()
        if i + 1 < count { next = BackgroundJob(label: "ifcn.stage.prepare") { prepare(i + 1) } }
        let processed = process(i, prepared)
        if let f = finishing { report(f.item, f.job.wait()) }
        finishing = (i, BackgroundJob(label: "ifcn.stage.finish") { finish(i, processed) })
    }
    if let f = finishing { report(f.item, f.job.wait()) }
}
