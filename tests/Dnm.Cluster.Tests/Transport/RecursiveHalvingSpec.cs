using System.Net;
using System.Runtime.InteropServices;
using Dnm.Cluster.Transport;
using Dnm.Core.Training;

namespace Dnm.Cluster.Tests.Transport;

/// <summary>
/// The all-reduce among workers: 2, 4 and 8 ranks over real loopback data-plane connections end with the bits of one
/// process summing every micro-batch in the fixed tree, and a rank lost mid-reduction fails every rank at once.
/// </summary>
public sealed class RecursiveHalvingSpec
{
    private readonly Guid _worldId = Guid.NewGuid();

    [Theory]
    [InlineData(2, 8, true, false)]
    [InlineData(4, 8, true, false)]
    [InlineData(8, 8, true, false)]
    [InlineData(4, 16, false, false)]
    [InlineData(8, 32, false, false)]
    // On the calling thread (a worker's step): the same frames and bits, through shared memory and over TCP.
    [InlineData(2, 8, true, true)]
    [InlineData(4, 8, true, true)]
    [InlineData(4, 16, false, true)]
    public async Task Should_give_every_rank_the_fixed_trees_root_bit_for_bit(int worldSize, int leaves, bool sharedMemory, bool blocking)
    {
        var options = sharedMemory ? null : Loopback.TcpOnly;
        var reducers = await ConnectAsync(worldSize, options);
        try
        {
            // An odd length halves unevenly at every level; 600 floats are a soft-count vector, inline frames.
            foreach (var (step, length) in new[] { (1L, 200_001), (2L, 600), (3L, 200_001) })
            {
                var micro = new MicroBatches(MaxSize: 4);
                var batch = leaves * 4;
                Assert.Equal(leaves, micro.Count(batch));
                Assert.True(RecursiveHalvingReducer.Applies(micro, batch, worldSize));
                var leafVectors = Enumerable.Range(0, leaves).Select(i => Loopback.RandomVector(length, seed: (int)step * 1000 + i)).ToArray();
                var expected = OneProcess(leafVectors);
                var blocks = Enumerable.Range(0, worldSize).Select(r => RankBlock(micro, batch, r, worldSize, leafVectors)).ToArray();

                // The coordinator's star sum of the same blocks, as today: the same bits.
                var star = new float[length];
                micro.SumContributions(batch, blocks.Select(b => (Memory<float>)(float[])b.Clone()).ToArray(), star);
                Assert.Equal(Bits(expected), Bits(star));

                await Task.WhenAll(reducers.Select((r, rank) => blocking
                    ? Task.Run(() => r.AllReduce(step, FrameKind.Gradients, blocks[rank])).WaitAsync(TimeSpan.FromSeconds(60))
                    : Task.Run(() => r.AllReduceAsync(step, FrameKind.Gradients, blocks[rank], Loopback.Deadline()).AsTask())));
                foreach (var block in blocks)
                    Assert.Equal(Bits(expected), Bits(block));
                // The data are such that the order of the additions shows in the bits: a sum in rank order differs.
                if (length > 1000)
                    Assert.NotEqual(Bits(expected), Bits(Sequential(leafVectors)));
            }
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
        }
    }

    [Theory]
    [InlineData(30_001, false)]
    // On the calling thread: frames that stream (a read of this thread beside an asynchronous write) and small ones written here.
    [InlineData(30_001, true)]
    [InlineData(1_001, true)]
    public async Task Should_run_inside_mutually_authenticated_sessions_between_the_workers(int length, bool blocking)
    {
        using var certificates = new Support.TestCertificates();
        using var tls = Support.TestCertificates.Load(certificates.Create("cluster"));
        var reducers = await ConnectAsync(4, Loopback.TcpOnly with { Tls = tls });
        try
        {
            Assert.All(reducers, r => Assert.All(r.Peers, c => Assert.True(c.IsEncrypted)));
            var micro = new MicroBatches(MaxSize: 4);
            var leafVectors = Enumerable.Range(0, 8).Select(i => Loopback.RandomVector(length, seed: 500 + i)).ToArray();
            var blocks = Enumerable.Range(0, 4).Select(r => RankBlock(micro, 32, r, 4, leafVectors)).ToArray();
            await Task.WhenAll(reducers.Select((r, rank) => blocking
                ? Task.Run(() => r.AllReduce(1, FrameKind.Gradients, blocks[rank])).WaitAsync(TimeSpan.FromSeconds(60))
                : Task.Run(() => r.AllReduceAsync(1, FrameKind.Gradients, blocks[rank], Loopback.Deadline()).AsTask())));
            var expected = OneProcess(leafVectors);
            foreach (var block in blocks)
                Assert.Equal(Bits(expected), Bits(block));
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
        }
    }

    [Fact]
    public void Should_tile_the_vector_with_the_ranks_slices()
    {
        foreach (var worldSize in new[] { 2, 4, 8, 16 })
        foreach (var length in new[] { 1, 7, 600, 855_001 })
        {
            var slices = Enumerable.Range(0, worldSize).Select(r => RecursiveHalvingReducer.SliceOf(r, worldSize, length)).OrderBy(s => s.Start).ToArray();
            Assert.Equal(0, slices[0].Start);
            for (var i = 1; i < slices.Length; i++)
                Assert.Equal(slices[i - 1].Start + slices[i - 1].Length, slices[i].Start);
            Assert.Equal(length, slices[^1].Start + slices[^1].Length);
        }
    }

    [Theory]
    [InlineData(1, 64, 8, false)]   // one rank: the star (nothing to reduce among workers)
    [InlineData(2, 64, 8, true)]
    [InlineData(4, 64, 8, true)]
    [InlineData(8, 64, 8, true)]
    [InlineData(16, 64, 8, false)]  // more ranks than micro-batches: some hold none
    [InlineData(3, 64, 8, false)]   // not a power of two: ranks hold several blocks
    [InlineData(4, 20, 8, true)]    // 3 micro-batches round up to 4, one a rank
    [InlineData(4, 8, 8, false)]    // one micro-batch
    public void Should_apply_only_where_every_rank_holds_one_aligned_block(int worldSize, int batch, int microBatch, bool applies)
        => Assert.Equal(applies, RecursiveHalvingReducer.Applies(new MicroBatches(microBatch), batch, worldSize));

    [Fact]
    public async Task Should_let_the_coordinator_assemble_the_root_from_one_slice_a_rank()
    {
        const int worldSize = 4, length = 100_003;
        var reducers = await ConnectAsync(worldSize, options: null);
        using var coordinatorListener = DataPlaneListener.Start(Loopback.AnyPort, _worldId, StarReducer.CoordinatorRank);
        var accept = StarReducer.AcceptWorkersAsync(coordinatorListener, worldSize, Loopback.Deadline());
        var clients = await Task.WhenAll(Enumerable.Range(0, worldSize).Select(r =>
            StarReduceClient.ConnectAsync(coordinatorListener.LocalEndPoint, _worldId, r, cancellationToken: Loopback.Deadline())));
        using var star = await accept;
        try
        {
            var micro = new MicroBatches(8);
            var leafVectors = Enumerable.Range(0, 8).Select(i => Loopback.RandomVector(length, seed: 77 + i)).ToArray();
            var blocks = Enumerable.Range(0, worldSize).Select(r => RankBlock(micro, 64, r, worldSize, leafVectors)).ToArray();
            var root = new float[length];
            var destinations = Enumerable.Range(0, worldSize).Select(r =>
            {
                var (start, count) = RecursiveHalvingReducer.SliceOf(r, worldSize, length);
                return root.AsMemory(start, count);
            }).ToArray();
            var gather = star.GatherAsync(9, FrameKind.Gradients, destinations, Loopback.Deadline()).AsTask();
            await Task.WhenAll(Enumerable.Range(0, worldSize).Select(rank => Task.Run(async () =>
            {
                await reducers[rank].ReduceScatterAsync(9, FrameKind.Gradients, blocks[rank], Loopback.Deadline());
                var (start, count) = RecursiveHalvingReducer.SliceOf(rank, worldSize, length);
                await clients[rank].ContributeAsync(9, FrameKind.Gradients, blocks[rank].AsMemory(start, count), Loopback.Deadline());
                await reducers[rank].AllGatherAsync(9, FrameKind.Gradients, blocks[rank], Loopback.Deadline());
            })));
            await gather;
            var expected = OneProcess(leafVectors);
            Assert.Equal(Bits(expected), Bits(root));
            foreach (var block in blocks)
                Assert.Equal(Bits(expected), Bits(block));
            // The coordinator's link carried one vector in (N slices), nothing out; each worker's link to it 1/N of one.
            var received = star.Workers.Sum(c => c.BytesReceived);
            Assert.Equal(length * sizeof(float) + worldSize * FrameHeader.Size, received);
            Assert.Equal(0, star.Workers.Sum(c => c.BytesSent));
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
            foreach (var c in clients) c.Dispose();
        }
    }

    [Theory]
    [InlineData(2, true, false)]
    [InlineData(4, true, false)]
    [InlineData(4, false, false)]
    [InlineData(2, true, true)]
    [InlineData(4, true, true)]
    [InlineData(4, false, true)]
    public async Task Should_reduce_from_a_block_it_only_reads_and_gather_with_the_slices_checksum_given(int worldSize, bool sharedMemory, bool blocking)
    {
        const int length = 150_001;
        var reducers = await ConnectAsync(worldSize, sharedMemory ? null : Loopback.TcpOnly);
        try
        {
            var micro = new MicroBatches(8);
            var leafVectors = Enumerable.Range(0, 8).Select(i => Loopback.RandomVector(length, seed: 300 + i)).ToArray();
            var blocks = Enumerable.Range(0, worldSize).Select(r => RankBlock(micro, 64, r, worldSize, leafVectors)).ToArray();
            var before = blocks.Select(b => (float[])b.Clone()).ToArray();
            // What the sums land in holds last step's numbers: nothing of them may remain.
            var sums = Enumerable.Range(0, worldSize).Select(r => Loopback.RandomVector(length, seed: 900 + r)).ToArray();
            await Task.WhenAll(Enumerable.Range(0, worldSize).Select(rank => Task.Run(async () =>
            {
                if (blocking) reducers[rank].ReduceScatter(11, FrameKind.Gradients, blocks[rank], sums[rank]);
                else await reducers[rank].ReduceScatterAsync(11, FrameKind.Gradients, blocks[rank], sums[rank], Loopback.Deadline());
                var (start, count) = RecursiveHalvingReducer.SliceOf(rank, worldSize, length);
                var checksum = Crc32C.Compute(MemoryMarshal.AsBytes(sums[rank].AsSpan(start, count)));
                if (blocking) reducers[rank].AllGather(11, FrameKind.Gradients, sums[rank], checksum);
                else await reducers[rank].AllGatherAsync(11, FrameKind.Gradients, sums[rank], checksum, Loopback.Deadline());
            }).WaitAsync(TimeSpan.FromSeconds(60))));
            var expected = OneProcess(leafVectors);
            for (var rank = 0; rank < worldSize; rank++)
            {
                Assert.Equal(Bits(expected), Bits(sums[rank]));
                Assert.Equal(Bits(before[rank]), Bits(blocks[rank]));
            }
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Should_send_the_slice_with_the_checksum_it_is_given(bool blocking)
    {
        // A wrong checksum for the slice is what the partner sees: proof that the given one is sent, not recomputed.
        const int length = 100_000;
        var reducers = await ConnectAsync(2, options: null);
        try
        {
            var data = new[] { Loopback.RandomVector(length, 1), Loopback.RandomVector(length, 2) };
            var gathers = Enumerable.Range(0, 2).Select(rank => blocking
                ? Task.Run(() => reducers[rank].AllGather(12, FrameKind.Gradients, data[rank], rank == 1 ? 0xDEADBEEFu : null)).WaitAsync(TimeSpan.FromSeconds(60))
                : Task.Run(() => reducers[rank].AllGatherAsync(12, FrameKind.Gradients, data[rank], rank == 1 ? 0xDEADBEEFu : null, Loopback.Deadline()).AsTask())).ToArray();
            var e = await Assert.ThrowsAsync<DataPlaneException>(() => gathers[0]);
            Assert.Equal("Checksum", e.Field);
            Assert.Contains("rank 1", e.Peer);
            // Rank 1 may have had rank 0's frame before rank 0 failed and closed the connection: either ending is fine there.
            await Task.WhenAny(gathers[1]);
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Should_fail_every_rank_at_once_when_one_is_lost(bool blocking)
    {
        const int worldSize = 4;
        var reducers = await ConnectAsync(worldSize, options: null);
        try
        {
            // Rank 3 is gone (a killed process): its sockets close. Ranks 1 and 2 are its partners; rank 0 is not, and
            // fails because the failure spreads (each failing rank closes all its connections), not on a timeout.
            reducers[3].Dispose();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // A blocked read ends when its socket closes: the failure spreads the same way on the calling thread.
            var reductions = Enumerable.Range(0, 3).Select(rank => blocking
                ? Task.Run(() => reducers[rank].AllReduce(4, FrameKind.Gradients, new float[50_000])).WaitAsync(TimeSpan.FromSeconds(60))
                : Task.Run(() => reducers[rank].AllReduceAsync(4, FrameKind.Gradients, new float[50_000], Loopback.Deadline()).AsTask())).ToArray();
            foreach (var reduction in reductions)
            {
                var e = await Assert.ThrowsAnyAsync<Exception>(() => reduction);
                Assert.True(e is DataPlaneException or InvalidOperationException, e.ToString());
            }
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
        }
    }

    [Fact]
    public async Task Should_refuse_a_partner_of_another_step()
    {
        var reducers = await ConnectAsync(2, options: null);
        try
        {
            var a = Task.Run(() => reducers[0].AllReduceAsync(5, FrameKind.Gradients, new float[1000], Loopback.Deadline()).AsTask());
            var b = Task.Run(() => reducers[1].AllReduceAsync(6, FrameKind.Gradients, new float[1000], Loopback.Deadline()).AsTask());
            var e = await Assert.ThrowsAsync<DataPlaneException>(() => a);
            Assert.Equal("Step", e.Field);
            Assert.Contains("rank 1", e.Peer);
            await Assert.ThrowsAnyAsync<Exception>(() => b);
        }
        finally
        {
            foreach (var r in reducers) r.Dispose();
        }
    }

    /// <summary>N ranks, each with its own listener, connected to their partners as the workers of a world are.</summary>
    private async Task<RecursiveHalvingReducer[]> ConnectAsync(int worldSize, DataPlaneOptions? options)
    {
        var listeners = Enumerable.Range(0, worldSize).Select(r => DataPlaneListener.Start(Loopback.AnyPort, _worldId, r, options)).ToArray();
        try
        {
            var endpoints = listeners.Select(l => (EndPoint)l.LocalEndPoint).ToArray();
            return await Task.WhenAll(listeners.Select(l => RecursiveHalvingReducer.ConnectAsync(l, _worldId, l.LocalRank, endpoints, options,
                e => throw new InvalidOperationException("refused a connection", e), Loopback.Deadline())));
        }
        finally
        {
            foreach (var l in listeners) l.Dispose();
        }
    }

    /// <summary>One process: every leaf summed in the fixed tree.</summary>
    private static float[] OneProcess(float[][] leaves)
    {
        var copies = leaves.Select(l => (float[])l.Clone()).ToArray();
        FixedOrderSum.Reduce(i => copies[i], Enumerable.Repeat(1, copies.Length).ToArray(), 0, copies.Length);
        return copies[0];
    }

    /// <summary>Rank r's one block: the fixed tree over its micro-batches, summed locally as its StepRunner does.</summary>
    private static float[] RankBlock(MicroBatches micro, int batch, int rank, int worldSize, float[][] leaves)
    {
        var (first, count) = micro.RankRange(batch, rank, worldSize);
        var copies = leaves.Select(l => (float[])l.Clone()).ToArray();
        var sizes = Enumerable.Repeat(1, copies.Length).ToArray();
        FixedOrderSum.Reduce(i => copies[i], sizes, first, count);
        return copies[first];
    }

    private static float[] Sequential(float[][] leaves)
    {
        var sum = (float[])leaves[0].Clone();
        for (var i = 1; i < leaves.Length; i++)
            for (var j = 0; j < sum.Length; j++) sum[j] += leaves[i][j];
        return sum;
    }

    private static byte[] Bits(float[] v) => MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
}
