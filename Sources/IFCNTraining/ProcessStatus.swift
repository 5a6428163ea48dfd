import Foundation

/// Seconds since this process started (Linux: /proc/self/stat start time against /proc/uptime),
/// for "time from launch to the first step"; 0 where /proc cannot be read.
func processAgeSeconds() -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
          let uptime = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    // fields after the command name: state is field 3, starttime field 22 (clock ticks after boot)
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 19, let ticks = Double(fields[19]), let up = Double(uptime.split(separator: " ")[0]) else { return 0 }
    return up - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// This process's memory from /proc/self/status: peak resident set (VmHWM) and the current private
/// (RssAnon) and file-backed (RssFile: mapped store pages, shared through the page cache) parts, in MB.
func memorySummary() -> String {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return "memory: /proc unreadable" }
    func mb(_ key: String) -> Int {
        let line = status.split(separator: "\n").first { $0.hasPrefix(key + ":") }
        return (line.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0) / 1024
    }
    return "peak RSS \(mb("VmHWM")) MB (now: private \(mb("RssAnon")) MB, mapped files \(mb("RssFile")) MB)"
}
