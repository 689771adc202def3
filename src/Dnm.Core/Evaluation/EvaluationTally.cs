namespace Dnm.Core.Evaluation;

/// <summary>
/// How an evaluation is cut into blocks: the reference samples (which name the nodes) and the evaluated samples, each in
/// consecutive blocks of <paramref name="BlockSize"/> (the run's batch size, so a block embeds as one batch, in the run's
/// micro-batches). Blocks are numbered reference first, then evaluated; whoever computes a block gets the same bits, so a
/// world of N ranks can split the blocks and merge their tallies into exactly one process's answer.
/// </summary>
public sealed record EvaluationBlocks(int ReferenceSamples, int EvaluatedSamples, int BlockSize)
{
    public int ReferenceBlocks => Blocks(ReferenceSamples);
    public int EvaluatedBlocks => Blocks(EvaluatedSamples);
    public int Count => ReferenceBlocks + EvaluatedBlocks;

    /// <summary>Block <paramref name="block"/>: whether it holds reference samples, and its sample range in that set.</summary>
    public (bool Reference, int Start, int Length) this[int block]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(block);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, Count);
            var reference = block < ReferenceBlocks;
            var (index, samples) = reference ? (block, ReferenceSamples) : (block - ReferenceBlocks, EvaluatedSamples);
            var start = index * BlockSize;
            return (reference, start, Math.Min(BlockSize, samples - start));
        }
    }

    /// <summary>The blocks rank <paramref name="rank"/> of <paramref name="worldSize"/> computes: every N-th, so each rank gets both kinds.</summary>
    public IEnumerable<int> Owned(int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
        for (var b = rank; b < Count; b += worldSize) yield return b;
    }

    private int Blocks(int samples)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(samples);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BlockSize);
        return (int)(((long)samples + BlockSize - 1) / BlockSize);
    }
}

/// <summary>
/// Everything an evaluation measures, as counts and per-block sums that merge exactly: the (node × label) counts of the
/// reference samples (node labels, the hit map) and of the evaluated samples (purity, NMI), the topographic-error count,
/// and each evaluated block's sums of BMU distances and squared reconstruction errors, added in block order at the end.
/// One process tallies every block; N ranks tally their own blocks and <see cref="Merge"/> gives the same bits, so a
/// cluster's metrics equal a single process's exactly. Labels take <c>Classes + 1</c> columns: the last is "unknown" (−1).
/// </summary>
public sealed class EvaluationTally
{
    private const uint Magic = 0x31544E44; // "DNT1"

    private readonly long[] reference;
    private readonly long[] evaluated;
    // The reference counts of the samples the accuracy's classifier may learn from (a semi-supervised run's labelled ones).
    private readonly long[] labelled;
    private readonly double[] distanceSums;
    private readonly double[] errorSums;
    private readonly bool[] done;

    public EvaluationTally(EvaluationBlocks blocks, int nodes, int classes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodes);
        ArgumentOutOfRangeException.ThrowIfNegative(classes);
        Blocks = blocks;
        Nodes = nodes;
        Classes = classes;
        var cells = checked(nodes * (classes + 1));
        reference = new long[cells];
        evaluated = new long[cells];
        labelled = new long[cells];
        distanceSums = new double[blocks.EvaluatedBlocks];
        errorSums = new double[blocks.EvaluatedBlocks];
        done = new bool[blocks.Count];
    }

    public EvaluationBlocks Blocks { get; }
    public int Nodes { get; }
    public int Classes { get; }
    public long TopographicErrors { get; private set; }

    /// <summary>Whether block <paramref name="block"/> has been tallied (here or in a merged tally).</summary>
    public bool Done(int block) => done[block];

    /// <summary>The blocks not tallied yet, in order.</summary>
    public int[] Missing() => Enumerable.Range(0, done.Length).Where(b => !done[b]).ToArray();

    /// <summary>Whether every block has been tallied (here or in a merged tally).</summary>
    public bool Complete => Array.TrueForAll(done, d => d);

    /// <summary>Reference samples each node is the BMU of (the hit map).</summary>
    public long[] Hits()
    {
        var hits = new long[Nodes];
        for (var n = 0; n < Nodes; n++)
            for (var c = 0; c <= Classes; c++) hits[n] += reference[n * (Classes + 1) + c];
        return hits;
    }

    /// <summary>
    /// Tallies reference block <paramref name="block"/>: its samples' BMUs and labels. <paramref name="isLabelled"/> (by
    /// reference-sample index) picks the samples whose labels the accuracy's classifier learns from; null: all.
    /// </summary>
    public void AddReference(int block, ReadOnlySpan<int> bmu, ReadOnlySpan<int> labels, Func<int, bool>? isLabelled = null)
    {
        var (isReference, start, _) = Take(block, bmu.Length);
        if (!isReference) throw new ArgumentException($"block {block} holds evaluated samples, not reference ones", nameof(block));
        Count(reference, bmu, labels);
        for (var i = 0; i < bmu.Length; i++)
            if (labels[i] >= 0 && (isLabelled is null || isLabelled(start + i)))
                labelled[bmu[i] * (Classes + 1) + labels[i]]++;
    }

    /// <summary>
    /// Tallies evaluated block <paramref name="block"/>: BMUs, second BMUs, BMU distances, labels and the block's squared
    /// reconstruction error; <paramref name="adjacent"/> says whether two nodes are lattice neighbours (topographic error).
    /// </summary>
    public void AddEvaluated(int block, ReadOnlySpan<int> bmu, ReadOnlySpan<int> second, ReadOnlySpan<float> distance,
        ReadOnlySpan<int> labels, double squaredError, Func<int, int, bool> adjacent)
    {
        var (isReference, _, length) = Take(block, bmu.Length);
        if (isReference) throw new ArgumentException($"block {block} holds reference samples, not evaluated ones", nameof(block));
        if (second.Length != length || distance.Length != length)
            throw new ArgumentException($"block {block} has {length} samples; got {second.Length} second BMUs and {distance.Length} distances");
        Count(evaluated, bmu, labels);
        var sum = 0.0;
        long errors = 0;
        for (var i = 0; i < length; i++)
        {
            sum += distance[i];
            if (!adjacent(RequireNode(bmu[i]), RequireNode(second[i]))) errors++;
        }
        var index = block - Blocks.ReferenceBlocks;
        distanceSums[index] = sum;
        errorSums[index] = squaredError;
        TopographicErrors += errors;
    }

    /// <summary>Adds another rank's tally of other blocks of the same evaluation.</summary>
    public void Merge(EvaluationTally other)
    {
        if (other.Blocks != Blocks || other.Nodes != Nodes || other.Classes != Classes)
            throw new ArgumentException($"tallies of different evaluations: {other.Blocks} with {other.Nodes} nodes and {other.Classes} classes " +
                                        $"against {Blocks} with {Nodes} nodes and {Classes} classes", nameof(other));
        for (var b = 0; b < done.Length; b++)
            if (done[b] && other.done[b]) throw new ArgumentException($"block {b} was tallied twice", nameof(other));
        for (var i = 0; i < reference.Length; i++)
        {
            reference[i] += other.reference[i];
            evaluated[i] += other.evaluated[i];
            labelled[i] += other.labelled[i];
        }
        for (var b = 0; b < distanceSums.Length; b++)
        {
            if (!other.done[Blocks.ReferenceBlocks + b]) continue;
            distanceSums[b] = other.distanceSums[b];
            errorSums[b] = other.errorSums[b];
        }
        for (var b = 0; b < done.Length; b++) done[b] |= other.done[b];
        TopographicErrors += other.TopographicErrors;
    }

    /// <summary>
    /// Node labels: the majority label of the reference samples each node is the BMU of (ties to the smallest label; −1
    /// for a node without labelled samples); null when the reference set has no labels.
    /// </summary>
    public int[]? LabelMap(bool referenceHasLabels) => referenceHasLabels && Classes > 0 ? Majority(reference) : null;

    /// <summary>
    /// The map as a classifier (the accuracy's): node labels from the labelled reference samples only, and a node without
    /// any taking the label of its nearest labelled node in prototype space (<see cref="MapMetrics.FillEmptyNodes"/>).
    /// </summary>
    public int[]? Classifier(bool referenceHasLabels, ReadOnlySpan<float> prototypes, int dim) =>
        referenceHasLabels && Classes > 0 && dim > 0 ? MapMetrics.FillEmptyNodes(Majority(labelled), prototypes, dim) : null;

    private int[] Majority(long[] counts) => MapMetrics.Majority(counts, Nodes, Classes, stride: Classes + 1);

    /// <summary>
    /// The map's quality on the evaluated samples: purity and NMI (with labels on both sides), QE, TE and the per-pixel
    /// reconstruction MSE (<paramref name="pixels"/> per image). Needs every block.
    /// </summary>
    /// <remarks>With the prototypes (<paramref name="dim"/> floats a node) it also gives the accuracy of <see cref="Classifier"/>.</remarks>
    public MapQuality Quality(bool referenceHasLabels, bool evaluatedHasLabels, int pixels, ReadOnlySpan<float> prototypes = default, int dim = 0)
    {
        if (!Complete)
            throw new InvalidOperationException($"the evaluation is missing blocks {string.Join(", ", Enumerable.Range(0, done.Length).Where(b => !done[b]).Take(8))}");
        long n = Blocks.EvaluatedSamples;
        if (n == 0) throw new InvalidOperationException("an evaluation needs at least one evaluated sample");
        double? purity = null, nmi = null;
        var labelMap = LabelMap(referenceHasLabels);
        if (labelMap is not null && evaluatedHasLabels)
        {
            purity = (double)Correct(labelMap) / n;
            nmi = Nmi(n);
        }
        double? accuracy = null;
        if (evaluatedHasLabels && Classifier(referenceHasLabels, prototypes, dim) is { } classifier)
            accuracy = (double)Correct(classifier) / n;
        double distance = 0, error = 0;
        for (var b = 0; b < distanceSums.Length; b++)
        {
            distance += distanceSums[b];
            error += errorSums[b];
        }
        return new MapQuality(purity, nmi, distance / n, (double)TopographicErrors / n, error / ((double)n * pixels), accuracy);
    }

    /// <summary>Evaluated samples whose BMU's label (by <paramref name="labelMap"/>; −1 counts as wrong) is their own.</summary>
    private long Correct(int[] labelMap)
    {
        long correct = 0;
        for (var node = 0; node < Nodes; node++)
            if (labelMap[node] >= 0) correct += evaluated[node * (Classes + 1) + labelMap[node]];
        return correct;
    }

    /// <summary>
    /// The tally as bytes, for another process to <see cref="Read"/> and merge: sparse (a rank's counts touch few cells),
    /// so a tally's size follows the samples it holds, not nodes × labels. Little-endian, 7-bit varints.
    /// </summary>
    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream))
        {
            w.Write(Magic);
            w.Write(Blocks.ReferenceSamples);
            w.Write(Blocks.EvaluatedSamples);
            w.Write(Blocks.BlockSize);
            w.Write(Nodes);
            w.Write(Classes);
            w.Write7BitEncodedInt64(TopographicErrors);
            WriteSparse(w, reference);
            WriteSparse(w, evaluated);
            WriteSparse(w, labelled);
            for (var b = 0; b < done.Length; b++)
            {
                if (!done[b]) continue;
                w.Write7BitEncodedInt(b);
                if (b < Blocks.ReferenceBlocks) continue;
                w.Write(distanceSums[b - Blocks.ReferenceBlocks]);
                w.Write(errorSums[b - Blocks.ReferenceBlocks]);
            }
            w.Write7BitEncodedInt(-1);
        }
        return stream.ToArray();
    }

    /// <summary>Reads <see cref="ToBytes"/>' output; anything else is an <see cref="InvalidDataException"/>.</summary>
    public static EvaluationTally Read(byte[] bytes)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, writable: false));
            if (r.ReadUInt32() != Magic) throw new InvalidDataException("not an evaluation tally (bad magic)");
            int referenceSamples = r.ReadInt32(), evaluatedSamples = r.ReadInt32(), blockSize = r.ReadInt32(), nodes = r.ReadInt32(), classes = r.ReadInt32();
            if (referenceSamples < 0 || evaluatedSamples < 0 || blockSize <= 0 || nodes <= 0 || nodes > Config.DnmConfig.Limits.MapNodes
                || classes is < 0 or > MaxClasses || (long)nodes * (classes + 1) > MaxCells)
                throw new InvalidDataException($"an evaluation tally with impossible sizes ({nodes} nodes, {classes} classes, block {blockSize})");
            var tally = new EvaluationTally(new EvaluationBlocks(referenceSamples, evaluatedSamples, blockSize), nodes, classes)
            {
                TopographicErrors = r.Read7BitEncodedInt64(),
            };
            ReadSparse(r, tally.reference);
            ReadSparse(r, tally.evaluated);
            ReadSparse(r, tally.labelled);
            var last = -1;
            for (var b = r.Read7BitEncodedInt(); b != -1; b = r.Read7BitEncodedInt())
            {
                if (b <= last || b >= tally.done.Length) throw new InvalidDataException($"an evaluation tally lists block {b} out of order or range");
                last = b;
                tally.done[b] = true;
                if (b < tally.Blocks.ReferenceBlocks) continue;
                tally.distanceSums[b - tally.Blocks.ReferenceBlocks] = r.ReadDouble();
                tally.errorSums[b - tally.Blocks.ReferenceBlocks] = r.ReadDouble();
            }
            if (r.BaseStream.Position != bytes.Length)
                throw new InvalidDataException($"an evaluation tally has {bytes.Length - r.BaseStream.Position} bytes too many");
            return tally;
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException)
        {
            throw new InvalidDataException($"an evaluation tally of {bytes.Length} bytes ends early or is malformed");
        }
    }

    /// <summary>The most label classes a tally holds (a bound for reading one from another process).</summary>
    public const int MaxClasses = 1 << 20;

    /// <summary>The most (node, label) cells a tally read from another process may allocate.</summary>
    public const long MaxCells = 1L << 27;

    private static void WriteSparse(BinaryWriter w, long[] counts)
    {
        var previous = -1;
        for (var i = 0; i < counts.Length; i++)
        {
            if (counts[i] == 0) continue;
            w.Write7BitEncodedInt(i - previous);
            w.Write7BitEncodedInt64(counts[i]);
            previous = i;
        }
        w.Write7BitEncodedInt(0);
    }

    private static void ReadSparse(BinaryReader r, long[] counts)
    {
        var at = -1;
        for (var step = r.Read7BitEncodedInt(); step != 0; step = r.Read7BitEncodedInt())
        {
            if (step < 0 || (long)at + step >= counts.Length) throw new InvalidDataException("an evaluation tally's counts run past its cells");
            at += step;
            var count = r.Read7BitEncodedInt64();
            if (count <= 0) throw new InvalidDataException("an evaluation tally holds a count that is not positive");
            counts[at] = count;
        }
    }

    private (bool Reference, int Start, int Length) Take(int block, int samples)
    {
        var range = Blocks[block];
        if (samples != range.Length) throw new ArgumentException($"block {block} has {range.Length} samples, got {samples}");
        if (done[block]) throw new InvalidOperationException($"block {block} was tallied twice");
        done[block] = true;
        return range;
    }

    private void Count(long[] counts, ReadOnlySpan<int> bmu, ReadOnlySpan<int> labels)
    {
        if (labels.Length != bmu.Length) throw new ArgumentException($"expected {bmu.Length} labels, got {labels.Length}", nameof(labels));
        for (var i = 0; i < bmu.Length; i++)
        {
            var label = labels[i];
            if (label >= Classes) throw new ArgumentOutOfRangeException(nameof(labels), $"label {label} of sample {i} is not below {Classes} classes");
            counts[RequireNode(bmu[i]) * (Classes + 1) + (label < 0 ? Classes : label)]++;
        }
    }

    /// <summary>
    /// NMI between BMU and label over the evaluated counts, as <see cref="MapMetrics.Nmi"/> defines it (arithmetic-mean
    /// normalisation, the unknown label a value of its own), summed in node-major order.
    /// </summary>
    private double Nmi(long n)
    {
        var width = Classes + 1;
        var nodeCounts = new long[Nodes];
        var labelCounts = new long[width];
        for (var node = 0; node < Nodes; node++)
            for (var c = 0; c < width; c++)
            {
                var count = evaluated[node * width + c];
                nodeCounts[node] += count;
                labelCounts[c] += count;
            }
        int usedNodes = nodeCounts.Count(c => c > 0), usedLabels = labelCounts.Count(c => c > 0);
        if (usedNodes == 1 && usedLabels == 1) return 1.0;
        if (usedNodes == 1 || usedLabels == 1) return 0.0;
        double total = n, mutual = 0;
        for (var node = 0; node < Nodes; node++)
            for (var c = 0; c < width; c++)
            {
                var count = evaluated[node * width + c];
                if (count > 0) mutual += count / total * Math.Log(total * count / ((double)nodeCounts[node] * labelCounts[c]));
            }
        var nmi = 2.0 * mutual / (Entropy(nodeCounts, total) + Entropy(labelCounts, total));
        return Math.Clamp(nmi, 0.0, 1.0);
    }

    private static double Entropy(long[] counts, double n)
    {
        var sum = 0.0;
        foreach (var c in counts)
            if (c > 0) sum += c * Math.Log(c);
        return Math.Log(n) - sum / n;
    }

    private int RequireNode(int node) =>
        (uint)node < (uint)Nodes ? node : throw new ArgumentOutOfRangeException(nameof(node), $"node {node} is outside 0..{Nodes - 1}");
}
