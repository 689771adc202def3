using Dnm.Core.Evaluation;
using Dnm.Core.Som;

namespace Dnm.Core.Tests.Evaluation;

public class BestMatchesSpec
{
    // 2×2 lattice in a 2-d latent space: node j = row*2 + col sits at (col, row).
    private static readonly float[] Square = [0, 0, 1, 0, 0, 1, 1, 1];

    [Fact]
    public void Should_find_first_and_second_bmu_and_distance_on_a_hand_worked_case()
    {
        // z0 = (0.1, 0.0): d² to nodes 0..3 = 0.01, 0.81, 1.01, 1.81 -> bmu 0, second 1, dist 0.1
        // z1 = (0.9, 0.8): d² = 1.45, 0.65, 0.85, 0.05           -> bmu 3, second 1, dist √0.05 = 0.2236068
        // z2 = (0.5, 0.0): d² = 0.25, 0.25, 1.25, 1.25           -> tie: bmu 0 (smaller index), second 1, dist 0.5
        float[] z = [0.1f, 0f, 0.9f, 0.8f, 0.5f, 0f];

        var (bmu, second, dist) = MapMetrics.BestMatches(z, n: 3, Square, nodes: 4, dim: 2);

        Assert.Equal(new[] { 0, 3, 0 }, bmu);
        Assert.Equal(new[] { 1, 1, 1 }, second);
        Assert.Equal(0.1f, dist[0], 5);
        Assert.Equal(0.2236068f, dist[1], 5);
        Assert.Equal(0.5f, dist[2], 5);
    }

    [Fact]
    public void Should_agree_with_brute_force_double_precision_when_dim_is_not_a_multiple_of_the_simd_width()
    {
        const int n = 50, nodes = 12, dim = 37;
        var random = new Random(11);
        var z = Enumerable.Range(0, n * dim).Select(_ => (float)random.NextDouble()).ToArray();
        var w = Enumerable.Range(0, nodes * dim).Select(_ => (float)random.NextDouble()).ToArray();

        var (bmu, second, dist) = MapMetrics.BestMatches(z, n, w, nodes, dim);

        for (var i = 0; i < n; i++)
        {
            var ranked = Enumerable.Range(0, nodes)
                .Select(j => (Node: j, D2: Enumerable.Range(0, dim).Sum(k => Math.Pow(z[i * dim + k] - w[j * dim + k], 2))))
                .OrderBy(p => p.D2).ToArray();
            Assert.Equal(ranked[0].Node, bmu[i]);
            Assert.Equal(ranked[1].Node, second[i]);
            Assert.Equal(Math.Sqrt(ranked[0].D2), dist[i], 4);
        }
    }

    [Fact]
    public void Should_reject_non_finite_latents_and_maps_without_a_second_node()
    {
        Assert.Throws<ArgumentException>(() => MapMetrics.BestMatches([float.NaN, 0f], 1, Square, 4, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => MapMetrics.BestMatches([0f, 0f], 1, [0f, 0f], 1, 2));
        Assert.Throws<ArgumentException>(() => MapMetrics.BestMatches([0f, 0f, 0f], 1, Square, 4, 2));
    }

    [Fact]
    public void Should_feed_quantization_and_topographic_error()
    {
        // Same three samples as above: dist 0.1, √0.05, 0.5; BMU pairs (0,1) (3,1) (0,1) are all 4-neighbours.
        var (bmu, second, dist) = MapMetrics.BestMatches([0.1f, 0f, 0.9f, 0.8f, 0.5f, 0f], 3, Square, 4, 2);

        Assert.Equal((0.1 + Math.Sqrt(0.05) + 0.5) / 3, MapMetrics.QuantizationError(dist), 5);
        Assert.Equal(0.0, MapMetrics.TopographicError(bmu, second, new MapGrid(2, 2)));
    }
}
