using Dnm.Cluster.Coordination;
using Dnm.Cluster.Hosting;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>Which way a world sums its statistics: auto (the default) sums among the workers only from 256 KiB.</summary>
public sealed class StatisticsReductionSpec
{
    [Theory]
    [InlineData(StatisticsReduction.Auto, 65_536, true)]     // 256 KiB
    [InlineData(StatisticsReduction.Auto, 65_535, false)]    // latency-bound: the star
    [InlineData(StatisticsReduction.Auto, 855_000, true)]    // the paper's model, 3.4 MB
    [InlineData(StatisticsReduction.Workers, 100, true)]     // asked for: whatever the size
    [InlineData(StatisticsReduction.Star, 855_000, false)]
    public void Auto_should_sum_among_the_workers_from_256_KiB(StatisticsReduction reduction, long floats, bool amongWorkers) =>
        Assert.Equal(amongWorkers, StatisticsReductionThreshold.AmongWorkers(reduction, floats));

    [Fact]
    public void Nodes_should_default_to_auto_and_take_each_word()
    {
        Assert.Equal(StatisticsReduction.Auto, new NodeOptions().Reduction);
        Assert.Equal(StatisticsReduction.Auto, new CoordinatorSettings().Reduction);
        foreach (var (word, reduction) in new[] { ("auto", StatisticsReduction.Auto), ("workers", StatisticsReduction.Workers), ("Star", StatisticsReduction.Star) })
            Assert.Equal(reduction, NodeEnvironment.Apply(new NodeOptions(), k => k == "DNM_REDUCTION" ? word : null).Reduction);
        var e = Assert.Throws<Dnm.Core.Config.ConfigException>(() => NodeEnvironment.Apply(new NodeOptions(), k => k == "DNM_REDUCTION" ? "ring" : null));
        Assert.Equal("DNM_REDUCTION=ring must be auto, workers or star", e.Message);
    }
}
