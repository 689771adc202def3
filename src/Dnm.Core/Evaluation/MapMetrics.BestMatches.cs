using System.Numerics;

namespace Dnm.Core.Evaluation;

public static partial class MapMetrics
{
    /// <summary>
    /// For each of the <paramref name="n"/> latent vectors in <paramref name="z"/> (row-major, n × dim):
    /// the nearest prototype in <paramref name="w"/> (nodes × dim) by squared Euclidean distance, the
    /// second nearest, and the Euclidean distance to the nearest. Ties go to the smaller node index.
    /// </summary>
    /// <remarks>
    /// Direct differences with SIMD rather than the ‖z‖² − 2z·w + ‖w‖² expansion: both cost one
    /// multiply-add per element, and the direct form cannot go negative through cancellation, so the
    /// reported distance needs no clamping. Samples run in parallel; n = 10 000, nodes = 600, dim = 100
    /// took about 0.35 s on two shared cores in a Release build (about 2 s in Debug, where the JIT does
    /// not optimise the vector loop).
    /// </remarks>
    public static (int[] bmu, int[] second, float[] dist) BestMatches(ReadOnlySpan<float> z, int n, ReadOnlySpan<float> w, int nodes, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        // A second BMU, and so the topographic error, needs at least two nodes.
        ArgumentOutOfRangeException.ThrowIfLessThan(nodes, 2);
        RequireSameLength(checked(n * dim), z.Length, nameof(z));
        RequireSameLength(checked(nodes * dim), w.Length, nameof(w));
        // A NaN distance compares false with everything and would leave a sample without a BMU.
        RequireFinite(z, nameof(z));
        RequireFinite(w, nameof(w));

        // Parallel.For's delegate cannot capture a span, so the inputs are copied once; the copy is
        // n·dim + nodes·dim floats, small next to the n·nodes·dim distance work.
        var zs = z.ToArray();
        var ws = w.ToArray();
        var bmu = new int[n];
        var second = new int[n];
        var dist = new float[n];

        Parallel.For(0, n, i =>
        {
            var sample = zs.AsSpan(i * dim, dim);
            float best = float.PositiveInfinity, next = float.PositiveInfinity;
            int bestNode = 0, nextNode = 1;
            for (var node = 0; node < nodes; node++)
            {
                var d = SquaredDistance(sample, ws.AsSpan(node * dim, dim));
                if (d < best)
                {
                    (next, nextNode) = (best, bestNode);
                    (best, bestNode) = (d, node);
                }
                else if (d < next)
                {
                    (next, nextNode) = (d, node);
                }
            }
            bmu[i] = bestNode;
            // With every distance infinite (overflow) nothing is ever smaller; keep the two distinct.
            second[i] = nextNode == bestNode ? (bestNode == 0 ? 1 : 0) : nextNode;
            dist[i] = MathF.Sqrt(best);
        });
        return (bmu, second, dist);
    }

    internal static float SquaredDistance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var width = Vector<float>.Count;
        var acc = Vector<float>.Zero;
        var k = 0;
        for (; k <= a.Length - width; k += width)
        {
            var d = new Vector<float>(a[k..]) - new Vector<float>(b[k..]);
            acc += d * d;
        }
        var sum = Vector.Sum(acc);
        for (; k < a.Length; k++)
        {
            var d = a[k] - b[k];
            sum += d * d;
        }
        return sum;
    }

    private static void RequireFinite(ReadOnlySpan<float> values, string name)
    {
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
                throw new ArgumentException($"Entry {i} is {values[i]}; distances need finite values.", name);
        }
    }
}
