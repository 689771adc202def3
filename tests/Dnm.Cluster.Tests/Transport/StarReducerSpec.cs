using System.Runtime.InteropServices;
using Dnm.Cluster.Transport;

namespace Dnm.Cluster.Tests.Transport;

public sealed class StarReducerSpec
{
    private readonly Guid _runId = Guid.NewGuid();

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(4, true)]
    [InlineData(1, false)]
    [InlineData(4, false)]
    public async Task Should_give_every_worker_the_rank_ordered_sum_whatever_the_arrival_order(int workers, bool sharedMemory)
    {
        var (reducer, clients) = await StartAsync(workers, options: sharedMemory ? null : Loopback.TcpOnly);
        using var _ = reducer;
        try
        {
            // Soft counts, gradients, then soft counts again: the kept receive buffers are sliced, not reused wrongly.
            foreach (var (step, kind, length) in new[] { (1L, FrameKind.SoftCounts, 600), (1L, FrameKind.Gradients, 800_000), (2L, FrameKind.SoftCounts, 600) })
            {
                var inputs = Enumerable.Range(0, workers).Select(r => Loopback.RandomVector(length, seed: (int)step * 100 + r)).ToArray();
                var expected = SequentialSum(inputs, Enumerable.Range(0, workers));
                var buffers = inputs.Select(v => (float[])v.Clone()).ToArray();
                var sum = new float[length];

                var coordinator = reducer.AllReduceAsync(step, kind, sum, Loopback.Deadline()).AsTask();
                // Highest rank first, with gaps: vectors arrive in the reverse of rank order.
                var contributions = new List<Task>();
                for (var rank = workers - 1; rank >= 0; rank--)
                {
                    contributions.Add(clients[rank].AllReduceAsync(step, kind, buffers[rank], Loopback.Deadline()).AsTask());
                    await Task.Delay(15);
                }
                await coordinator;
                await Task.WhenAll(contributions);

                Assert.Equal(Bits(expected), Bits(sum));
                foreach (var buffer in buffers)
                    Assert.Equal(Bits(expected), Bits(buffer));
                if (workers == 4)
                {
                    // The data are chosen so that summation order shows in the bits; otherwise this test
                    // could not tell a rank-ordered sum from an arrival-ordered one.
                    Assert.NotEqual(Bits(expected), Bits(SequentialSum(inputs, Enumerable.Range(0, workers).Reverse())));
                }
            }
            // The 800 000-float gradients took the path asked for, both ways; soft counts always go inline.
            foreach (var client in clients)
            {
                Assert.Equal(sharedMemory ? 800_000 * 4 : 0, client.Connection.SharedMemoryBytesSent);
                Assert.Equal(sharedMemory ? 800_000 * 4 : 0, client.Connection.SharedMemoryBytesReceived);
            }
        }
        finally
        {
            foreach (var client in clients)
                client.Dispose();
        }
    }

    [Fact]
    public async Task Should_fail_the_step_and_name_the_worker_that_sent_the_wrong_step()
    {
        var (reducer, clients) = await StartAsync(2);
        using var _ = reducer;
        using var c0 = clients[0];
        using var c1 = clients[1];

        var reduce = reducer.ReduceAsync(5, FrameKind.Gradients, new float[10], Loopback.Deadline()).AsTask();
        await c0.ContributeAsync(5, FrameKind.Gradients, new float[10], Loopback.Deadline());
        await c1.ContributeAsync(4, FrameKind.Gradients, new float[10], Loopback.Deadline());

        var ex = await Assert.ThrowsAsync<DataPlaneException>(() => reduce);
        Assert.Equal("Step", ex.Field);
        Assert.Contains("rank 1", ex.Peer);
    }

    [Fact]
    public async Task Should_refuse_two_connections_claiming_the_same_rank()
    {
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, _runId, StarReducer.CoordinatorRank);
        var accept = StarReducer.AcceptWorkersAsync(listener, 2, Loopback.Deadline());
        using var a = await StarReduceClient.ConnectAsync(listener.LocalEndPoint, _runId, 1, cancellationToken: Loopback.Deadline());
        using var b = await StarReduceClient.ConnectAsync(listener.LocalEndPoint, _runId, 1, cancellationToken: Loopback.Deadline());
        var ex = await Assert.ThrowsAsync<DataPlaneException>(() => accept);
        Assert.Equal("Rank", ex.Field);
    }

    internal static async Task<(StarReducer Reducer, StarReduceClient[] Clients)> StartAsync(int workers, Guid? runId = null, DataPlaneOptions? options = null)
    {
        var run = runId ?? Guid.NewGuid();
        using var listener = DataPlaneListener.Start(Loopback.AnyPort, run, StarReducer.CoordinatorRank, options);
        var accept = StarReducer.AcceptWorkersAsync(listener, workers, Loopback.Deadline());
        var clients = new StarReduceClient[workers];
        for (var rank = workers - 1; rank >= 0; rank--) // connection order differs from rank order on purpose
            clients[rank] = await StarReduceClient.ConnectAsync(listener.LocalEndPoint, run, rank, options, Loopback.Deadline());
        return (await accept, clients);
    }

    private static float[] SequentialSum(float[][] inputs, IEnumerable<int> order)
    {
        var sum = new float[inputs[0].Length];
        var first = true;
        foreach (var rank in order)
        {
            for (var i = 0; i < sum.Length; i++)
                sum[i] = first ? inputs[rank][i] : sum[i] + inputs[rank][i];
            first = false;
        }
        return sum;
    }

    private static int[] Bits(float[] v) => MemoryMarshal.Cast<float, int>(v.AsSpan()).ToArray();
}
