/// One-to-one assignment of reference instances to predicted instances.
public struct InstanceMatching: Equatable, Sendable {
    /// Predicted label assigned to each matched reference label.
    public var matches: [Int32: Int32]
    /// Reference labels without a predicted instance (missed), ascending.
    public var missed: [Int32]
    /// Predicted labels without a reference instance (false positives), ascending.
    public var falsePositives: [Int32]

    public init(matches: [Int32: Int32], missed: [Int32], falsePositives: [Int32]) {
        self.matches = matches
        self.missed = missed
        self.falsePositives = falsePositives
    }

    /// Greedy matching by overlap: pairs are taken in order of decreasing overlap (ties: smaller reference label,
    /// then smaller predicted label) and kept when neither label is taken yet. Only overlapping pairs can match.
    public init(_ table: OverlapTable) {
        let pairs = table.overlaps.sorted { l, r in
            if l.value != r.value { return l.value > r.value }
            if l.key.reference != r.key.reference { return l.key.reference < r.key.reference }
            return l.key.prediction < r.key.prediction
        }
        var matches: [Int32: Int32] = [:]
        var takenPredictions = Set<Int32>()
        for (pair, _) in pairs where matches[pair.reference] == nil && !takenPredictions.contains(pair.prediction) {
            matches[pair.reference] = pair.prediction
            takenPredictions.insert(pair.prediction)
        }
        self.matches = matches
        self.missed = table.referenceCounts.keys.filter { matches[$0] == nil }.sorted()
        self.falsePositives = table.predictionCounts.keys.filter { !takenPredictions.contains($0) }.sorted()
    }
}
