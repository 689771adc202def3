using Dnm.Core.Explore;

namespace Dnm.Core.Tests.Explore;

public sealed class NodeMembersSpec
{
    [Fact]
    public void Should_group_samples_by_node_nearest_first_with_ties_by_index()
    {
        int[] bmu = [2, 0, 2, 2, 0, 3];
        float[] distance = [0.5f, 0.25f, 0.125f, 0.5f, 1f, 0f];
        var members = NodeMembers.Build(bmu, distance, nodes: 4);
        Assert.Equal([1, 4], members.Members(0).ToArray());
        Assert.Empty(members.Members(1).ToArray());
        Assert.Equal([2, 0, 3], members.Members(2).ToArray());
        Assert.Equal([0.125f, 0.5f, 0.5f], members.Distances(2).ToArray());
        Assert.Equal([2, 0, 3, 1], members.Hits());
        var qe = members.QuantizationErrors();
        Assert.Equal(0.625f, qe[0]);
        Assert.True(float.IsNaN(qe[1]));
        Assert.Equal(0f, qe[3]);
    }

    [Fact]
    public void Should_hold_a_million_placements_in_compact_arrays()
    {
        const int n = 1_000_000, nodes = 10_000;
        var rng = new Random(3);
        var bmu = new int[n];
        var distance = new float[n];
        for (var i = 0; i < n; i++) (bmu[i], distance[i]) = (rng.Next(nodes), (float)rng.NextDouble());
        var members = NodeMembers.Build(bmu, distance, nodes);
        Assert.Equal(n, members.Samples);
        Assert.Equal(n, members.Hits().Sum());
        var d = members.Distances(1234);
        for (var i = 1; i < d.Length; i++) Assert.True(d[i - 1] <= d[i]);
        foreach (var i in members.Members(1234)) Assert.Equal(1234, bmu[i]);
    }

    [Fact]
    public void Should_refuse_a_node_outside_the_lattice_or_a_negative_distance()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NodeMembers.Build([4], [0f], nodes: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => NodeMembers.Build([0], [-1f], nodes: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => NodeMembers.Build([0], [float.NaN], nodes: 4));
    }
}
