using Dnm.Cluster.Replica;
using Dnm.Cluster.Transport;
using Dnm.Core.Training;

namespace Dnm.Cluster.Tests.Cluster;

public sealed class ReplicaBackendSpec
{
    [Fact]
    public void A_worlds_shared_memory_should_hold_its_largest_step_payload()
    {
        var defaults = DataPlaneOptions.Default;
        // The fully connected preset: 3.3 M floats of statistics (13 MB), above the 8 MiB default; one block per rank.
        var mlp = ReplicaBackend.SharedMemoryFor(defaults, new MicroBatches(64), 256, 3_306_000, 2);
        Assert.Equal(13L << 20, mlp.SharedMemoryBytes);
        Assert.True(mlp.SharedMemoryBytes >= 3_306_000L * sizeof(float));
        // Three ranks of 8 micro-batches: the busiest sends two blocks.
        Assert.True(ReplicaBackend.SharedMemoryFor(defaults, new MicroBatches(32), 256, 3_306_000, 3).SharedMemoryBytes >= 2 * 3_306_000L * sizeof(float));
        // The paper's model fits the default: unchanged. Disabled shared memory stays disabled.
        Assert.Same(defaults, ReplicaBackend.SharedMemoryFor(defaults, new MicroBatches(64), 256, 855_000, 4));
        var off = defaults with { SharedMemoryBytes = 0 };
        Assert.Same(off, ReplicaBackend.SharedMemoryFor(off, new MicroBatches(64), 256, 3_306_000, 2));
    }
}
