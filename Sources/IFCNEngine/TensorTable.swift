/// A named tensor inside one flat buffer (PyTorch state_dict name and shape).
public struct NamedTensor: Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Names, shapes and offsets of tensors packed back to back in one contiguous buffer, in
/// registration order. Registering a name twice returns the first registration (shared blocks).
public struct TensorTable: Sendable {
    public private(set) var entries: [NamedTensor] = []
    private var byName: [String: Int] = [:]
    public private(set) var total = 0

    public init() {}

    @discardableResult
    mutating func register(_ name: String, shape: [Int]) -> Int {
        if let i = byName[name] {
            precondition(entries[i].shape == shape, "\(name) registered with two shapes")
            return entries[i].offset
        }
        let t = NamedTensor(name: name, shape: shape, offset: total)
        byName[name] = entries.count
        entries.append(t)
        total += t.count
        return t.offset
    }

    public subscript(name: String) -> NamedTensor? { byName[name].map { entries[$0] } }
    public func offset(_ name: String) -> Int {
        guard let t = self[name] else { preconditionFailure("no tensor \(name)") }
        return t.offset
    }
}
