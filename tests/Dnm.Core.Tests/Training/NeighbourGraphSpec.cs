using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

public sealed class NeighbourGraphSpec
{
    [Fact]
    public void Build_should_find_each_points_nearest_others_nearest_first()
    {
        using var scope = NewDisposeScope();
        // Points on a line at 0, 1, 3, 7, 8, 20 (in two dimensions, the second one 0).
        var x = tensor(new float[] { 0, 0, 1, 0, 3, 0, 7, 0, 8, 0, 20, 0 }).reshape(6, 2);
        var g = NeighbourGraph.Build(x, k: 2, blockRows: 4); // two blocks, the second one partial
        int[][] expected = [[1, 2], [0, 2], [1, 0], [4, 2], [3, 2], [4, 3]];
        for (int i = 0; i < 6; i++)
            Assert.Equal(expected[i], new[] { g.Neighbour(i, 0), g.Neighbour(i, 1) });
    }

    [Fact]
    public void Build_should_order_close_neighbours_of_far_away_points_by_their_exact_distance()
    {
        using var scope = NewDisposeScope();
        // Points 1000 + t·(1, 1, 1, 1) for t = 0, 0.1, 0.25, 0.45, 0.7, 1: in float32, ‖x‖² − 2a·x ranks these to only
        // ~0.5 (1e-7 of ‖x‖² ≈ 4e6), far coarser than their squared distances' gaps (~0.05); it puts sample 0 before
        // sample 3 as sample 2's second neighbour. The exact re-ranking must give the true order.
        float[] t = [0, 0.1f, 0.25f, 0.45f, 0.7f, 1];
        var x = tensor(t.SelectMany(v => Enumerable.Repeat(1000 + v, 4)).ToArray()).reshape(6, 4);
        var g = NeighbourGraph.Build(x, k: 2);
        int[][] expected = [[1, 2], [0, 2], [1, 3], [2, 4], [3, 5], [4, 3]];
        for (int i = 0; i < 6; i++)
            Assert.Equal(expected[i], new[] { g.Neighbour(i, 0), g.Neighbour(i, 1) });
    }

    [Fact]
    public void Diffusion_should_average_each_point_with_its_neighbours_once_per_step()
    {
        using var scope = NewDisposeScope();
        // 1-D values 0, 3, 9, 30 with one neighbour each: 0↔1, 1→0, 2→1, 3→2.
        var g = new NeighbourGraph(4, 1, [1, 0, 1, 2]);
        var z = tensor(new float[] { 0, 3, 9, 30 }).reshape(4, 1);
        var once = g.Diffuse(z, steps: 1).data<float>().ToArray();
        Assert.Equal(new float[] { 1.5f, 1.5f, 6f, 19.5f }, once);
        var twice = g.Diffuse(z, steps: 2).data<float>().ToArray();
        Assert.Equal(new float[] { 1.5f, 1.5f, 3.75f, 12.75f }, twice);
        // The input is left as it was.
        Assert.Equal(new float[] { 0, 3, 9, 30 }, z.data<float>().ToArray());
    }

    [Fact]
    public void Label_agreement_should_count_the_pairs_whose_labels_match()
    {
        // 4 samples, labels a a b b; neighbours: 0→1 (same), 1→2 (differs), 2→3 (same), 3→2 (same).
        var g = new NeighbourGraph(4, 1, [1, 2, 3, 2]);
        int[] labels = [0, 0, 1, 1];
        Assert.Equal(0.75, g.LabelAgreement(i => labels[i]), 12);
    }

    [Fact]
    public void A_table_of_the_wrong_size_should_be_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => new NeighbourGraph(3, 2, new int[5]));
        Assert.Contains("needs 6 entries", e.Message);
    }
}
