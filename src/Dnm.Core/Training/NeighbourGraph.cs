using Dnm.Core.Runtime;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// The k nearest neighbours of every training sample in the pre-trained latent space (Euclidean,
/// the sample itself excluded), from which the smoothed latent targets of the joint phase are made.
/// </summary>
public sealed class NeighbourGraph
{
    private readonly int[] table; // count × k, nearest first

    public NeighbourGraph(int count, int k, int[] table)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (table.Length != (long)count * k)
            throw new ArgumentException($"a graph of {count} samples with {k} neighbours needs {(long)count * k} entries, got {table.Length}", nameof(table));
        Count = count;
        K = k;
        this.table = table;
    }

    public int Count { get; }
    public int K { get; }

    /// <summary>The table, row i holding sample i's neighbours, nearest first (for checkpoints).</summary>
    public ReadOnlySpan<int> Table => table;

    /// <summary>Neighbour <paramref name="rank"/> (0 = nearest) of sample <paramref name="i"/>.</summary>
    public int Neighbour(int i, int rank) => table[i * K + rank];

    /// <summary>
    /// <paramref name="steps"/> rounds of neighbourhood averaging, z_i ← (z_i + Σ_{j ∈ N(i)} z_j)/(k + 1), on
    /// the rows of <paramref name="z"/> (N×D, row i for sample i). Each round pulls a sample towards the mean of
    /// its neighbours, so points of one dense region contract towards each other while regions that the graph
    /// barely links stay apart. Returns a new tensor; the caller owns it.
    /// </summary>
    public Tensor Diffuse(Tensor z, int steps)
    {
        if (z.shape[0] != Count) throw new ArgumentException($"the graph has {Count} samples, the embeddings {z.shape[0]}", nameof(z));
        using var _ = no_grad();
        var index = tensor(table.Select(v => (long)v).ToArray(), device: z.device);
        var current = z.to(float32).clone();
        using var divisor = TorchScalars.Of(K + 1);
        using var one = TorchScalars.Of(1.0);
        for (int t = 0; t < steps; t++)
        {
            using var scope = NewDisposeScope();
            var next = current.index_select(0, index).view(Count, K, -1).sum(1).add_(current, one).div_(divisor);
            current.copy_(next);
        }
        index.Dispose();
        return current;
    }

    /// <summary>The fraction of (sample, neighbour) pairs whose labels agree: how well the graph follows the classes.</summary>
    public double LabelAgreement(Func<int, int> label)
    {
        long same = 0;
        for (int i = 0; i < Count; i++)
        {
            var li = label(i);
            for (int r = 0; r < K; r++) if (label(table[i * K + r]) == li) same++;
        }
        return same / ((double)Count * K);
    }

    /// <summary>
    /// Exact k-nearest-neighbour search over <paramref name="features"/> (N×D, on the CPU), in blocks of
    /// <paramref name="blockRows"/> rows spread over the cores (torch runs one thread per step thread
    /// here, so one matrix product would use one core). Block results do not depend on the thread.
    /// </summary>
    public static NeighbourGraph Build(Tensor features, int k, int blockRows = 256, CancellationToken cancel = default)
    {
        var n = (int)features.shape[0];
        if (k >= n) throw new ArgumentException($"{k} neighbours need more than {k} samples, got {n}", nameof(k));
        var table = new int[(long)n * k];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = features.to(float32).contiguous();
        var xt = x.t();
        var norms = TorchScalars.Square(x).sum(1).unsqueeze(0);
        var blocks = (n + blockRows - 1) / blockRows;
        var c = Math.Min(2 * k, n - 1); // candidates per row for the exact re-ranking
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = cancel }, b =>
        {
            using var block = NewDisposeScope();
            using var grad = no_grad();
            using var minusTwo = TorchScalars.Of(-2.0);
            using var one = TorchScalars.Of(1.0);
            using var infinity = TorchScalars.Of(double.PositiveInfinity);
            var start = b * blockRows;
            var rows = Math.Min(blockRows, n - start);
            // ‖a − x‖² − ‖a‖² = ‖x‖² − 2a·x ranks a row's neighbours as the distance does, with one buffer.
            var d = x.narrow(0, start, rows).mm(xt).mul_(minusTwo).add_(norms, one);
            d.scatter_(1, arange(start, start + rows, dtype: int64).unsqueeze(1), full(new long[] { rows, 1 }, infinity, dtype: float32));
            var (_, candidates) = d.topk(c, dim: 1, largest: false, sorted: false);
            // The ranking above cancels ‖x‖² against 2a·x in float32, so neighbours much closer than the points' norms
            // are ordered only to ~1e-7·‖x‖²: a rounding-level change of the embeddings (another worker count) could
            // swap near-tied neighbours. The candidates are therefore re-ranked by the exact distance in float64.
            var a = x.narrow(0, start, rows).to(float64).unsqueeze(1);
            var diff = x.index_select(0, candidates.flatten()).view(rows, c, -1).to(float64).sub_(a);
            var exact = diff.mul(diff).sum(2);
            var (_, order) = exact.topk(k, dim: 1, largest: false, sorted: true);
            var idx = candidates.gather(1, order);
            using var host = idx.to(int32).contiguous();
            host.data<int>().CopyTo(table.AsSpan((int)((long)start * k), rows * k));
        });
        return new NeighbourGraph(n, k, table);
    }
}
