using Dnm.Cluster.Transport;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Transport;

// Counts every allocation in the process, so nothing else may run meanwhile.
[CollectionDefinition(nameof(AllocationSpec), DisableParallelization = true)]
public sealed class AllocationCollection;

[Collection(nameof(AllocationSpec))]
public sealed class AllocationSpec(ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]  // the gradients through shared memory
    [InlineData(false)] // everything over TCP
    public async Task Repeated_steps_reuse_every_buffer(bool sharedMemory)
    {
        const int Workers = 2, SoftCounts = 600, Gradients = 800_000, WarmUp = 30, Steps = 100;
        var (reducer, clients) = await StarReducerSpec.StartAsync(Workers, options: sharedMemory ? null : Loopback.TcpOnly);
        using var _ = reducer;
        using var c0 = clients[0];
        using var c1 = clients[1];
        var local = Loopback.RandomVector(Gradients, 11);
        float[][] data = [new float[Gradients], new float[Gradients]];
        var sum = new float[Gradients];
        int[] lengths = [SoftCounts, Gradients];

        long before = 0;
        for (var step = 0; step < WarmUp + Steps; step++)
        {
            if (step == WarmUp)
                before = GC.GetTotalAllocatedBytes(precise: true);
            // A real step: soft counts, then gradients, through the same connections and buffers.
            foreach (var length in lengths)
            {
                var kind = length == SoftCounts ? FrameKind.SoftCounts : FrameKind.Gradients;
                local.AsSpan(0, length).CopyTo(data[0]);
                local.AsSpan(0, length).CopyTo(data[1]);
                var coordinator = reducer.AllReduceAsync(step, kind, sum.AsMemory(0, length));
                var w0 = c0.AllReduceAsync(step, kind, data[0].AsMemory(0, length));
                var w1 = c1.AllReduceAsync(step, kind, data[1].AsMemory(0, length));
                await coordinator;
                await w0;
                await w1;
            }
        }
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Equal(local[^1] + local[^1], data[0][^1]); // the steps did reduce
        // Every gradient frame took the path under test (none fell back to TCP for a busy segment).
        Assert.Equal(sharedMemory ? (WarmUp + Steps) * Gradients * 4L : 0, c0.Connection.SharedMemoryBytesSent);
        Assert.Equal(sharedMemory ? (WarmUp + Steps) * Gradients * 4L : 0, c1.Connection.SharedMemoryBytesReceived);

        // Per step, 4 frames go up and 4 down: 16 frame operations (a send and a receive each). Buffers are
        // all reused; what remains is the pooling async builder's cache misses, a state-machine box of a few
        // hundred bytes now and then (about 360 B per operation measured). Allowing 1 KiB per operation
        // still fails on any per-frame buffer: even a copied soft-count vector is 2.4 kB.
        const long FrameOperations = Steps * Workers * 2 * 2 * 2;
        var payloadBytes = (long)Steps * Workers * 2 * (SoftCounts + Gradients) * sizeof(float);
        output.WriteLine($"allocated {allocated} B over {Steps} steps: {allocated / (double)FrameOperations:F0} B per frame operation, " +
                         $"{100.0 * allocated / payloadBytes:F4} % of {payloadBytes} payload bytes");
        Assert.True(allocated < FrameOperations * 1024, $"allocated {allocated} B over {FrameOperations} frame operations");
    }
}
