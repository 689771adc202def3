using Dnm.Core.Som;

namespace Dnm.Core.Evaluation;

/// <summary>
/// Map-quality measures over plain arrays (see dnm-algorithm.md, "Evaluation"). Labels are used only
/// here, never in training. Lattice convention: node j sits at row j / cols, column j % cols (<see cref="MapGrid"/>).
/// </summary>
/// <remarks>
/// Every function is pure; an empty sample set is rejected rather than answered with NaN, because an
/// empty evaluation set is always a caller bug and a NaN would slip silently into reports.
/// </remarks>
public static partial class MapMetrics
{
    /// <summary>
    /// The majority label of the samples whose BMU each node is. Ties go to the smallest label; a node
    /// that is no sample's BMU gets -1. Samples with a negative (unknown) label are ignored.
    /// </summary>
    public static int[] LabelMap(ReadOnlySpan<int> bmu, ReadOnlySpan<int> labels, int nodes, int classes)
    {
        RequireSameLength(bmu.Length, labels.Length, nameof(labels));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);

        var counts = new long[checked(nodes * classes)];
        for (var i = 0; i < bmu.Length; i++)
        {
            var label = labels[i];
            if (label < 0)
                continue;
            if (label >= classes)
                throw new ArgumentOutOfRangeException(nameof(labels), $"Label {label} of sample {i} is not below classes = {classes}.");
            counts[RequireNode(bmu[i], nodes, i) * classes + label]++;
        }
        return Majority(counts, nodes, classes, stride: classes);
    }

    /// <summary>
    /// The majority label of each node from (node × label) counts, node j's at <c>counts[j · stride + c]</c> for the
    /// <paramref name="classes"/> labels c (a stride past them leaves room for an unknown-label column). The rule of
    /// <see cref="LabelMap"/> and of <see cref="EvaluationTally"/>: ties to the smallest label, a node without counts −1.
    /// </summary>
    internal static int[] Majority(ReadOnlySpan<long> counts, int nodes, int classes, int stride)
    {
        var map = new int[nodes];
        for (var node = 0; node < nodes; node++)
        {
            // Strictly greater: the first (smallest) label reaching the top count wins a tie, and a
            // count of zero never wins, which leaves unused nodes at -1.
            int best = -1;
            long bestCount = 0;
            for (var c = 0; c < classes; c++)
            {
                var count = counts[node * stride + c];
                if (count > bestCount)
                    (best, bestCount) = (c, count);
            }
            map[node] = best;
        }
        return map;
    }

    /// <summary>
    /// Fraction of samples whose BMU's label (from <see cref="LabelMap"/>) equals their own label. A BMU
    /// labelled -1 counts as wrong, and so does a sample with an unknown label: pass labelled samples only.
    /// </summary>
    public static double Purity(ReadOnlySpan<int> bmu, ReadOnlySpan<int> labels, ReadOnlySpan<int> labelMap)
    {
        RequireSameLength(bmu.Length, labels.Length, nameof(labels));
        RequireSamples(bmu.Length, nameof(bmu));

        var correct = 0;
        for (var i = 0; i < bmu.Length; i++)
        {
            var predicted = labelMap[RequireNode(bmu[i], labelMap.Length, i)];
            if (predicted >= 0 && predicted == labels[i])
                correct++;
        }
        return (double)correct / bmu.Length;
    }

    /// <summary>
    /// Normalized mutual information between two labellings of the same samples (here: BMU index and
    /// class label), NMI = 2·I(U;V) / (H(U) + H(V)) with natural logarithms.
    /// </summary>
    /// <remarks>
    /// The arithmetic-mean normalisation is scikit-learn's default for normalized_mutual_info_score, which
    /// is what published DPSOM/SOM-VAE numbers are computed with, so ours are comparable. Degenerate cases
    /// follow scikit-learn too: if both labellings put every sample in one group, they agree perfectly and
    /// NMI = 1; if only one of them does, it carries no information about the other and NMI = 0.
    /// Values can be any integers; they are only compared for equality.
    /// </remarks>
    public static double Nmi(ReadOnlySpan<int> clusters, ReadOnlySpan<int> labels)
    {
        RequireSameLength(clusters.Length, labels.Length, nameof(labels));
        RequireSamples(clusters.Length, nameof(clusters));

        var clusterCounts = new Dictionary<int, int>();
        var labelCounts = new Dictionary<int, int>();
        var jointCounts = new Dictionary<(int Cluster, int Label), int>();
        for (var i = 0; i < clusters.Length; i++)
        {
            Increment(clusterCounts, clusters[i]);
            Increment(labelCounts, labels[i]);
            Increment(jointCounts, (clusters[i], labels[i]));
        }

        if (clusterCounts.Count == 1 && labelCounts.Count == 1)
            return 1.0;
        if (clusterCounts.Count == 1 || labelCounts.Count == 1)
            return 0.0;

        double n = clusters.Length;
        var mutualInformation = 0.0;
        foreach (var ((cluster, label), count) in jointCounts)
            mutualInformation += count / n * Math.Log(n * count / ((double)clusterCounts[cluster] * labelCounts[label]));

        var nmi = 2.0 * mutualInformation / (Entropy(clusterCounts.Values, n) + Entropy(labelCounts.Values, n));
        // Rounding can push a perfect match a hair above 1 or independence a hair below 0.
        return Math.Clamp(nmi, 0.0, 1.0);
    }

    /// <summary>Quantization error: the mean Euclidean distance from each sample to its BMU's prototype.</summary>
    public static double QuantizationError(ReadOnlySpan<float> dist)
    {
        RequireSamples(dist.Length, nameof(dist));
        var sum = 0.0;
        foreach (var d in dist)
            sum += d;
        return sum / dist.Length;
    }

    /// <summary>
    /// Topographic error: the fraction of samples whose first and second BMUs are not neighbours on the lattice
    /// (<see cref="MapGrid.Adjacent"/>: the 4 neighbours of a rect lattice, the 6 of a hex one; on a torus the wrapped
    /// neighbours across an edge count too).
    /// </summary>
    public static double TopographicError(ReadOnlySpan<int> bmu, ReadOnlySpan<int> second, MapGrid grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        RequireSameLength(bmu.Length, second.Length, nameof(second));
        RequireSamples(bmu.Length, nameof(bmu));

        var nodes = grid.Nodes;
        var errors = 0;
        for (var i = 0; i < bmu.Length; i++)
        {
            int a = RequireNode(bmu[i], nodes, i), b = RequireNode(second[i], nodes, i);
            if (!grid.Adjacent(a, b))
                errors++;
        }
        return (double)errors / bmu.Length;
    }


    /// <summary>H = −Σ (c/n) ln(c/n), computed as ln n − (1/n) Σ c ln c.</summary>
    private static double Entropy(IEnumerable<int> counts, double n)
    {
        var sum = 0.0;
        foreach (var c in counts)
            sum += c * Math.Log(c);
        return Math.Log(n) - sum / n;
    }

    private static void Increment<TKey>(Dictionary<TKey, int> counts, TKey key) where TKey : notnull
    {
        counts.TryGetValue(key, out var count);
        counts[key] = count + 1;
    }

    private static int RequireNode(int node, int nodes, int sample) =>
        (uint)node < (uint)nodes
            ? node
            : throw new ArgumentOutOfRangeException(nameof(node), $"Node {node} of sample {sample} is outside 0..{nodes - 1}.");

    private static void RequireSameLength(int expected, int actual, string name)
    {
        if (expected != actual)
            throw new ArgumentException($"Expected {expected} entries, got {actual}.", name);
    }

    private static void RequireSamples(int count, string name)
    {
        if (count == 0)
            throw new ArgumentException("At least one sample is needed.", name);
    }
}
