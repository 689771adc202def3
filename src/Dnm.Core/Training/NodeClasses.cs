namespace Dnm.Core.Training;

/// <summary>
/// The class distribution each node of the map learns from the labelled samples of semi-supervised training: decayed
/// counts N_jc of the labelled samples of class c whose BMU node j was. A step's counts are a sum over its samples, so
/// they travel in the step's one mergeable vector (<see cref="StepLayout.ClassCountsOffset"/>), and every replica applies
/// the reduced sum alike: N ← ρ·N + batch counts (<see cref="Accumulate"/>). The supervised loss reads
/// P(c | j) = (N_jc + 1/C) / (Σ_c N_jc + 1) (<see cref="Probabilities"/>): one pseudo-count spread over the classes, so
/// a node no labelled sample reached predicts all classes alike and pulls no sample anywhere.
/// </summary>
public sealed class NodeClasses
{
    /// <summary>Checkpoint tensor name: N as nodes × classes floats.</summary>
    public const string CheckpointName = "som/classes";

    /// <summary>
    /// ρ, the counts' decay per step: they remember about the last 1/(1 − ρ) = 100 steps (25,600 samples at batch 256),
    /// so labels seen where the prototypes used to be fade as the map moves.
    /// </summary>
    public const float Decay = 0.99f;

    public NodeClasses(int nodes, int classes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        Nodes = nodes;
        Classes = classes;
        Counts = new float[nodes * classes];
    }

    public int Nodes { get; }
    public int Classes { get; }

    /// <summary>N, row-major (node j's classes at j·C).</summary>
    public float[] Counts { get; }

    /// <summary>N ← ρ·N + <paramref name="batchCounts"/> (the reduced counts of one joint step).</summary>
    public void Accumulate(ReadOnlySpan<float> batchCounts)
    {
        if (batchCounts.Length != Counts.Length) throw new ArgumentException($"class counts need {Counts.Length} floats, got {batchCounts.Length}");
        for (int i = 0; i < Counts.Length; i++) Counts[i] = Decay * Counts[i] + batchCounts[i];
    }

    /// <summary>N ← <paramref name="counts"/> (the labelled samples' counts on the map SOM pre-training left, or a checkpoint's).</summary>
    public void Set(ReadOnlySpan<float> counts)
    {
        if (counts.Length != Counts.Length) throw new ArgumentException($"class counts need {Counts.Length} floats, got {counts.Length}");
        counts.CopyTo(Counts);
    }

    /// <summary>P(c | j) into <paramref name="destination"/> (nodes × classes, row-major).</summary>
    public void Probabilities(Span<float> destination)
    {
        var prior = 1.0 / Classes;
        for (int j = 0; j < Nodes; j++)
        {
            var row = Counts.AsSpan(j * Classes, Classes);
            double total = 1;
            foreach (var n in row) total += n;
            for (int c = 0; c < Classes; c++) destination[j * Classes + c] = (float)((row[c] + prior) / total);
        }
    }

    /// <summary>The counts of labelled samples by BMU: <paramref name="bmu"/>[i] and <paramref name="labels"/>[i] (negative: unlabelled, skipped).</summary>
    public static float[] Histogram(ReadOnlySpan<int> bmu, ReadOnlySpan<int> labels, int nodes, int classes)
    {
        var counts = new float[nodes * classes];
        for (int i = 0; i < bmu.Length; i++)
            if (labels[i] >= 0 && labels[i] < classes) counts[bmu[i] * classes + labels[i]]++;
        return counts;
    }
}
