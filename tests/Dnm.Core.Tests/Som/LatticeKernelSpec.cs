using Dnm.Core.Runtime;
using Dnm.Core.Som;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Som;

/// <summary>
/// The Kohonen kernel follows the lattice. One sample z = 1 whose BMU is node 0, prototypes at 0, σ = 1, η = 1, the
/// minibatch rule with b = 1: each node moves to w_j = h_0j = exp(−d²(0, j)/2), so the prototypes read out the kernel.
/// </summary>
public sealed class LatticeKernelSpec
{
    private static float[] KernelRow(MapGrid grid, params double[] sigmas)
    {
        TorchRuntime.EnsureCpuNumerics();
        using var scope = NewDisposeScope();
        using var som = new SomLattice(grid, 1, CPU);
        var (sums, counts) = som.BmuStatistics(tensor(new[] { 1f }).view(1, 1), tensor(new long[] { 0 }));
        // Each update starts from prototypes at 0, so the last σ's kernel row is what remains.
        foreach (var sigma in sigmas.DefaultIfEmpty(1))
        {
            som.SetPrototypes(zeros(grid.Nodes, 1));
            som.Update(sums, counts, batch: 1, new ScheduleValues(Sigma: sigma, Eta: 1), SomRule.Minibatch);
        }
        return som.Prototypes.view(-1).data<float>().ToArray();
    }

    private static void AssertKernel(double[] squaredDistances, float[] actual) =>
        Assert.Equal(squaredDistances.Select(d => (float)Math.Exp(-d / 2)), actual, (a, b) => Math.Abs(a - b) < 1e-6f);

    [Fact]
    public void A_2x2_hex_map_should_weigh_its_second_row_by_hex_distances()
    {
        // Node 2 at (½, √3/2) is a neighbour of node 0 (d² = 1); node 3 at (1½, √3/2) is √3 away (d² = 3; rect: 2).
        AssertKernel([0, 1, 1, 3], KernelRow(new MapGrid(2, 2, LatticeKind.Hex)));
        AssertKernel([0, 1, 1, 2], KernelRow(new MapGrid(2, 2)));
        // On a 2x2 hex torus node 3 is also a neighbour: x = 1½ − 2 = −½ across the left edge.
        AssertKernel([0, 1, 1, 1], KernelRow(new MapGrid(2, 2, LatticeKind.Hex, toroidal: true)));
    }

    [Fact]
    public void A_toroidal_map_should_weigh_nodes_across_the_edges_as_near()
    {
        // 3x3 torus: node 8 is one row and one column away from node 0 (d² = 2; flat: 2² + 2² = 8).
        AssertKernel([0, 1, 1, 1, 2, 2, 1, 2, 2], KernelRow(new MapGrid(3, 3, LatticeKind.Rect, toroidal: true)));
        AssertKernel([0, 1, 4, 1, 2, 5, 4, 5, 8], KernelRow(new MapGrid(3, 3)));
    }

    [Fact]
    public void Weights_too_small_for_a_normal_float_should_be_exactly_zero_and_the_rest_exact()
    {
        // The paper's 20x30 map at σ = 0.3: exp(−d²/0.18) is below float32's smallest normal number from d² = 16 on.
        var grid = new MapGrid(20, 30);
        var row = KernelRow(grid, 1.1, 0.3, 0.3);
        var expected = Enumerable.Range(0, grid.Nodes).Select(j => (float)Math.Exp(-grid.SquaredDistance(0, j) / 0.18)).ToArray();
        Assert.All(row, w => Assert.True(w == 0 || float.IsNormal(w), $"weight {w} is subnormal"));
        for (int j = 0; j < grid.Nodes; j++)
        {
            if (float.IsNormal(expected[j]) && expected[j] > 2e-38f) Assert.Equal(expected[j], row[j], 1e-5f * expected[j]); // the float32 exponent (|x| up to 87) costs ~4·10⁻⁶ relative
            else if (!float.IsNormal(expected[j])) Assert.Equal(0f, row[j]);
        }
        Assert.Contains(row, w => w == 0);
        // A changed σ rebuilds the kernel: back at σ = 1.1 the fourth neighbour along the row is weighed again.
        var wide = KernelRow(grid, 0.3, 1.1);
        Assert.Equal((float)Math.Exp(-16 / (2 * 1.1 * 1.1)), wide[4], 1e-6f);
    }
}
