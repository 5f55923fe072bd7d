/// "Did you mean" suggestions for misspelt keys and enum values, by edit distance.
///
/// Returns the candidate closest to `word` when it is close enough to be a plausible typo:
/// at most 1 edit for short words, 2 for words of five or more characters, and never more
/// than half the word; or a candidate that starts with the word. Ties go to the earlier candidate, so callers list candidates in
/// documentation order and the answer is deterministic.
func suggestion(for word: String, among candidates: [String]) -> String? {
    let lowered = word.lowercased()
    var best: (candidate: String, distance: Int)?
    for candidate in candidates {
        // A difference only in case or in `-` versus `_` is the likeliest typo of all.
        let normalizedWord = lowered.replacingOccurrences(of: "-", with: "_")
        let normalizedCandidate = candidate.lowercased().replacingOccurrences(of: "-", with: "_")
        if normalizedWord == normalizedCandidate { return candidate }
        // A word cut short ("root" for "rootfs") is a typo too, however many letters are missing.
        if word.count >= 3, normalizedCandidate.hasPrefix(normalizedWord) { return candidate }
        let d = editDistance(lowered, candidate.lowercased())
        if best == nil || d < best!.distance { best = (candidate, d) }
    }
    guard let best else { return nil }
    let limit = min(word.count >= 5 ? 2 : 1, max(1, word.count / 2))
    return best.distance <= limit ? best.candidate : nil
}

/// Levenshtein distance with adjacent transpositions counted as one edit
/// (optimal string alignment), over Unicode scalars.
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    // Three rolling rows: the transposition case looks two rows back.
    var prev2 = [Int](repeating: 0, count: y.count + 1)
    var prev = Array(0...y.count)
    var cur = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        cur[0] = i
        for j in 1...y.count {
            let cost = x[i - 1] == y[j - 1] ? 0 : 1
            var v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                v = min(v, prev2[j - 2] + 1)
            }
            cur[j] = v
        }
        (prev2, prev, cur) = (prev, cur, prev2)
    }
    return prev[y.count]
}
