using Dnm.Core.Runtime;
using Dnm.Core.Som;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Som;

/// <summary>
/// The two Kohonen rules on a 1×2 lattice with 1-D prototypes, against values computed by hand:
/// w = (0, 10); samples 2 and 4 pick node 0, 9 picks node 1; σ = 1 so h(0,1) = e^(−1/2) = 0.606531;
/// S = (6 + 9h, 9 + 6h) = (11.458776, 12.639184), H = (2 + h, 1 + 2h) = (2.606531, 2.213061).
/// </summary>
public sealed class SomLatticeSpec
{
    private static float[] Step(SomRule rule, float[] prototypes, float[] samples, double sigma, double eta)
    {
        TorchRuntime.EnsureCpuNumerics();
        using var scope = NewDisposeScope();
        using var som = new SomLattice(new MapGrid(1, 2), 1, CPU);
        som.SetPrototypes(tensor(prototypes).view(2, 1));
        var z = tensor(samples).view(-1, 1);
        var bmu = som.SquaredDistances(z).argmin(1);
        var (sums, counts) = som.BmuStatistics(z, bmu);
        som.Update(sums, counts, samples.Length, new ScheduleValues(sigma, eta), rule);
        return som.Prototypes.view(-1).data<float>().ToArray();
    }

    [Fact]
    public void Minibatch_rule_should_move_each_node_by_eta_times_its_weighted_residual_over_the_batch()
    {
        var w = Step(SomRule.Minibatch, [0f, 10f], [2f, 4f, 9f], sigma: 1, eta: 0.5);
        // w0 = 0 + 0.5·(11.458776 − 2.606531·0)/3; w1 = 10 + 0.5·(12.639184 − 2.213061·10)/3
        Assert.Equal(1.909796, w[0], 4);
        Assert.Equal(8.418095, w[1], 4);
    }

    [Fact]
    public void Batch_rule_should_move_each_node_eta_of_the_way_to_its_neighbourhood_mean()
    {
        var w = Step(SomRule.Batch, [0f, 10f], [2f, 4f, 9f], sigma: 1, eta: 0.5);
        // w0 = 0.5·0 + 0.5·11.458776/2.606531; w1 = 0.5·10 + 0.5·12.639184/2.213061
        Assert.Equal(2.198101, w[0], 4);
        Assert.Equal(7.855585, w[1], 4);
    }

    [Fact]
    public void Batch_rule_should_leave_a_node_with_almost_no_neighbourhood_weight_nearly_in_place()
    {
        // σ = 0.1: node 1 gets no BMU and h(0,1) = e^(−50) ≈ 2e−22, so H_1 ≪ 1. The plain S/H rule would
        // jump it half way to 3 (its "neighbourhood mean", made of 2e−22-sized sums); the rule moves it by
        // η·(S_1 − H_1·w_1) ≈ 1e−21 instead. Node 0 (H = 3) takes the full batch step to the mean 3.
        var w = Step(SomRule.Batch, [0f, 10f], [2f, 3f, 4f], sigma: 0.1, eta: 0.5);
        Assert.Equal(1.5, w[0], 5);
        Assert.Equal(10.0, w[1], 5);
    }
}
