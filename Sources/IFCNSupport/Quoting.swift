/// Text taken from a file (a header value, a tensor name) made safe to print in a message: in single
/// quotes, every character outside printable ASCII written as an escape (`\n`, `\t`, `\u{1B}`), and cut
/// to `limit` characters with "..." so a megabyte of garbage or a terminal escape sequence never reaches
/// the terminal as is.
public func quoted<S: StringProtocol>(_ text: S, limit: Int = 60) -> String {
    var out = ""
    var shown = 0
    for scalar in text.unicodeScalars {
        if shown >= limit { return "'" + out + "'..." }
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "'": out += "\\'"
        case "\\": out += "\\\\"
        case " "..."~": out.unicodeScalars.append(scalar)
        default: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
        }
        shown += 1
    }
    return "'" + out + "'"
}
