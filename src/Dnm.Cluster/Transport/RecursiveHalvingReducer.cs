using System.Net;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Dnm.Core.Training;

namespace Dnm.Cluster.Transport;

/// <summary>
/// Worker side of the all-reduce among the workers themselves (docs/cluster.md, "Scaling model"): recursive halving
/// (a reduce-scatter), then recursive doubling (an all-gather), over one data-plane connection per level to rank
/// r XOR 2^k. It applies to a power-of-two world whose ranks each hold exactly one aligned block of the fixed
/// summation tree (<see cref="Applies"/>): rank r's vector is then the tree's node over the ranks' leaves [r, r+1),
/// and level k of the halving computes the nodes of width 2^(k+1) — the lower rank's partial sum (left child) plus
/// the upper rank's (right child), element by element in float32, as <see cref="FixedOrderSum"/> does. Each rank
/// keeps half of its current range at every level, so after log2 N levels it holds the root for 1/N of the elements
/// (<see cref="SliceOf"/>), the same bits as one process summing every micro-batch; every link carried b/2 + b/4 + …
/// each way. The all-gather sends the slices back the way they came. Owns (and disposes) its connections.
/// </summary>
public sealed class RecursiveHalvingReducer : IAllReducer, IDisposable
{
    // _peers[k]: the connection to rank Rank ^ (1 << k).
    private readonly DataPlaneConnection[] _peers;
    private float[] _scratch = [];

    /// <summary>Takes one connection to each partner rank ^ 2^k, k &lt; log2 <paramref name="worldSize"/>, in any order.</summary>
    public RecursiveHalvingReducer(int rank, int worldSize, IEnumerable<DataPlaneConnection> peers)
    {
        if (!IsPowerOfTwoWorld(worldSize))
            throw new ArgumentException($"Recursive halving needs a power-of-two world of at least 2 ranks, not {worldSize}.", nameof(worldSize));
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, worldSize);
        Rank = rank;
        WorldSize = worldSize;
        _peers = new DataPlaneConnection[BitOperations.Log2((uint)worldSize)];
        foreach (var connection in peers)
        {
            var partner = connection.RemoteRank ^ rank;
            var level = partner > 0 && BitOperations.IsPow2(partner) ? BitOperations.Log2((uint)partner) : -1;
            if (level < 0 || level >= _peers.Length || connection.RemoteRank >= worldSize)
                throw new DataPlaneException(connection.Peer, "Rank",
                    $"{connection.Peer} is no partner of rank {rank} in a recursive halving over {worldSize} ranks (its partners: {string.Join(", ", Partners(rank, worldSize))}).");
            if (_peers[level] is { } other)
                throw new DataPlaneException(connection.Peer, "Rank", $"Rank {connection.RemoteRank} connected twice: {other.Peer} and {connection.Peer}.");
            _peers[level] = connection;
        }
        for (var level = 0; level < _peers.Length; level++)
            if (_peers[level] is null)
                throw new ArgumentException($"Rank {rank} has no connection to its partner rank {rank ^ (1 << level)}.", nameof(peers));
    }

    public int Rank { get; }

    public int WorldSize { get; }

    /// <summary>The connections by level (for byte counters and to name a failed partner).</summary>
    public IReadOnlyList<DataPlaneConnection> Peers => _peers;

    /// <summary>True for the world sizes recursive halving serves: a power of two, at least 2 (one rank reduces nothing).</summary>
    public static bool IsPowerOfTwoWorld(int worldSize) => worldSize >= 2 && BitOperations.IsPow2(worldSize);

    /// <summary>
    /// Whether a batch of <paramref name="batchLength"/> samples reduces among <paramref name="worldSize"/> ranks by recursive
    /// halving with the fixed tree's bits: a power-of-two world in which every rank holds exactly one aligned block of
    /// the tree (the micro-batches, a power of two, are at least as many as the ranks). Otherwise the star reduces it.
    /// </summary>
    public static bool Applies(MicroBatches micro, int batchLength, int worldSize)
    {
        if (!IsPowerOfTwoWorld(worldSize)) return false;
        for (var rank = 0; rank < worldSize; rank++)
            if (micro.Blocks(batchLength, rank, worldSize).Count != 1) return false;
        return true;
    }

    /// <summary>The ranks a rank exchanges with, level by level: rank XOR 2^k.</summary>
    public static IEnumerable<int> Partners(int rank, int worldSize)
    {
        for (var bit = 1; bit < worldSize; bit <<= 1)
            yield return rank ^ bit;
    }

    /// <summary>
    /// The elements [Start, Start+Length) of a vector of <paramref name="length"/> floats whose root rank
    /// <paramref name="rank"/> holds after the reduce-scatter: level k halves the range (the lower half to the rank
    /// whose bit k is 0), so the slices of ranks 0..N-1 tile the vector, in bit-reversed rank order.
    /// </summary>
    public static (int Start, int Length) SliceOf(int rank, int worldSize, int length)
    {
        var (lo, hi) = (0, length);
        for (var level = 0; 1 << level < worldSize; level++)
            (lo, hi) = Halve(lo, hi, upper: ((rank >> level) & 1) == 1).Keep;
        return (lo, hi - lo);
    }

    /// <summary>
    /// This rank's slice of <paramref name="data"/> after the reduce-scatter (<see cref="SliceOf"/>) and its CRC-32C, computed once
    /// for the slice's two frames: to the coordinator, and to the first partner of <see cref="AllGatherAsync(long, FrameKind, Memory{float}, uint?, CancellationToken)"/>.
    /// </summary>
    public (Memory<float> Slice, uint Checksum) ChecksummedSlice(Memory<float> data)
    {
        var (start, length) = SliceOf(Rank, WorldSize, data.Length);
        var slice = data.Slice(start, length);
        return (slice, Crc32C.Compute(System.Runtime.InteropServices.MemoryMarshal.AsBytes(slice.Span)));
    }

    /// <summary>The kept and the given half of [lo, hi) at one level; the upper rank keeps the upper half.</summary>
    private static ((int Lo, int Hi) Keep, (int Lo, int Hi) Give) Halve(int lo, int hi, bool upper)
    {
        var mid = lo + (hi - lo) / 2;
        return upper ? ((mid, hi), (lo, mid)) : ((lo, mid), (mid, hi));
    }

    /// <summary>
    /// Connects <paramref name="rank"/> to its partners in the world <paramref name="worldId"/> (the connections' run id):
    /// at level k the rank whose bit k is 1 connects to the one whose bit is 0, which accepts on its listener.
    /// <paramref name="endpoints"/>[r] is rank r's listener. Peers the listener refuses (a stray, another world) go to
    /// <paramref name="refused"/>. On failure every connection made is closed.
    /// </summary>
    public static async Task<RecursiveHalvingReducer> ConnectAsync(DataPlaneListener listener, Guid worldId, int rank, IReadOnlyList<EndPoint> endpoints,
        DataPlaneOptions? options, Action<DataPlaneException> refused, CancellationToken cancellationToken)
    {
        var worldSize = endpoints.Count;
        if (!IsPowerOfTwoWorld(worldSize) || rank < 0 || rank >= worldSize)
            throw new ArgumentException($"Rank {rank} of {worldSize}: recursive halving needs a power-of-two world of at least 2 ranks.", nameof(endpoints));
        var lower = Partners(rank, worldSize).Where(p => p < rank).ToArray();
        var accepting = Partners(rank, worldSize).Count(p => p > rank);
        var accepted = new List<DataPlaneConnection>(accepting);
        var connects = lower.Select(p => DataPlaneConnection.ConnectAsync(endpoints[p], worldId, rank, options, cancellationToken)).ToArray();
        try
        {
            await listener.AcceptManyAsync(accepting, accepted, refused, cancellationToken, (worldId, rank)).ConfigureAwait(false);
            await Task.WhenAll(connects).ConfigureAwait(false);
            return new RecursiveHalvingReducer(rank, worldSize, accepted.Concat(connects.Select(c => c.Result)));
        }
        catch
        {
            // Every connect is finished (or failed) before the connections it made are closed.
            try
            {
                await Task.WhenAll(connects).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
            }
            foreach (var c in accepted.Concat(connects.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result)))
                c.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks><paramref name="data"/> holds this rank's block of the tree on entry and the root on return.</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask AllReduceAsync(long step, FrameKind kind, Memory<float> data, CancellationToken cancellationToken = default)
    {
        await ReduceScatterAsync(step, kind, data, cancellationToken).ConfigureAwait(false);
        await AllGatherAsync(step, kind, data, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A failed exchange closes every connection of this rank, not only the failed one: its partners at the other levels
    /// then fail at once too, and so on through the world, instead of waiting for a frame this rank will never send.
    /// A reduction among workers fails as a whole, as the star's does when the coordinator closes the world.
    /// </summary>
    private void FailAll()
    {
        foreach (var peer in _peers)
            peer.Dispose();
    }

    /// <summary>
    /// Recursive halving: <paramref name="data"/> holds this rank's block of the tree on entry; on return its
    /// <see cref="SliceOf"/> holds the root's elements (the rest is partial sums, overwritten by <see cref="AllGatherAsync"/>).
    /// </summary>
    public ValueTask ReduceScatterAsync(long step, FrameKind kind, Memory<float> data, CancellationToken cancellationToken = default)
        => ReduceScatterAsync(step, kind, data, data, cancellationToken);

    /// <summary>
    /// <see cref="ReduceScatterAsync(long, FrameKind, ReadOnlyMemory{float}, Memory{float}, CancellationToken)"/> for a caller whose thread
    /// waits for it anyway (a worker's step): each frame is sent and received on that thread where it cannot block on the partner
    /// (through shared memory, or small), so no thread-pool thread has to wake and then wake it; a payload that streams over TCP is
    /// still sent asynchronously. The same frames, the same bits.
    /// </summary>
    public void ReduceScatter(long step, FrameKind kind, ReadOnlyMemory<float> block, Memory<float> data)
        => Complete(ReduceScatterAsync(step, kind, block, data, blocking: true, CancellationToken.None));

    /// <summary><see cref="AllGatherAsync(long, FrameKind, Memory{float}, uint?, CancellationToken)"/> on the calling thread, as <see cref="ReduceScatter"/>.</summary>
    public void AllGather(long step, FrameKind kind, Memory<float> data, uint? sliceChecksum = null)
        => Complete(AllGatherAsync(step, kind, data, sliceChecksum, blocking: true, CancellationToken.None));

    /// <summary><see cref="AllReduceAsync"/> on the calling thread, as <see cref="ReduceScatter"/>.</summary>
    public void AllReduce(long step, FrameKind kind, Memory<float> data)
    {
        ReduceScatter(step, kind, data, data);
        AllGather(step, kind, data);
    }

    private static void Complete(ValueTask exchange)
    {
        if (exchange.IsCompletedSuccessfully) return;
        exchange.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// Recursive halving from this rank's block of the tree in <paramref name="block"/>, which is only read: the first level sends
    /// its half from there and adds the partner's half to it into <paramref name="data"/>, so the block is never copied. On
    /// return <paramref name="data"/>'s <see cref="SliceOf"/> holds the root's elements; the rest of it is partial sums or
    /// stale, overwritten by <see cref="AllGatherAsync"/>. Each partner's half is added where it arrived (shared memory) or
    /// from the scratch it landed in (TCP).
    /// </summary>
    public ValueTask ReduceScatterAsync(long step, FrameKind kind, ReadOnlyMemory<float> block, Memory<float> data, CancellationToken cancellationToken = default)
        => ReduceScatterAsync(step, kind, block, data, blocking: false, cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReduceScatterAsync(long step, FrameKind kind, ReadOnlyMemory<float> block, Memory<float> data, bool blocking, CancellationToken cancellationToken)
    {
        if (block.Length != data.Length)
            throw new ArgumentException($"a block of {block.Length} floats reduces into {data.Length}", nameof(data));
        var (lo, hi) = (0, data.Length);
        var from = block;
        for (var level = 0; level < _peers.Length; level++)
        {
            var upper = ((Rank >> level) & 1) == 1;
            var (keep, give) = Halve(lo, hi, upper);
            // The node is the lower rank's partial sum (its left child) plus the upper rank's (its right child).
            await ExchangeAsync(level, step, kind, from[give.Lo..give.Hi], receive: default, checksum: null,
                new ReceivedSum(from[keep.Lo..keep.Hi], data[keep.Lo..keep.Hi], ReceivedIsLeft: upper), blocking, cancellationToken).ConfigureAwait(false);
            from = data;
            (lo, hi) = keep;
        }
    }

    /// <summary>
    /// Recursive doubling: <paramref name="data"/>'s <see cref="SliceOf"/> holds this rank's slice of the root; on return
    /// all of it does. The levels run in reverse, each rank sending what it holds and receiving its partner's half.
    /// <paramref name="sliceChecksum"/>: the slice's CRC-32C where the caller already has it (<see cref="Crc32C.Compute"/>), so the
    /// first level, which sends the slice, does not checksum it again.
    /// </summary>
    public ValueTask AllGatherAsync(long step, FrameKind kind, Memory<float> data, CancellationToken cancellationToken = default)
        => AllGatherAsync(step, kind, data, null, cancellationToken);

    /// <inheritdoc cref="AllGatherAsync(long, FrameKind, Memory{float}, CancellationToken)"/>
    public ValueTask AllGatherAsync(long step, FrameKind kind, Memory<float> data, uint? sliceChecksum, CancellationToken cancellationToken = default)
        => AllGatherAsync(step, kind, data, sliceChecksum, blocking: false, cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AllGatherAsync(long step, FrameKind kind, Memory<float> data, uint? sliceChecksum, bool blocking, CancellationToken cancellationToken)
    {
        // The range before each level's halving, from the whole vector down to the slice.
        var ranges = new (int Lo, int Hi)[_peers.Length];
        var (lo, hi) = (0, data.Length);
        for (var level = 0; level < _peers.Length; level++)
        {
            ranges[level] = (lo, hi);
            (lo, hi) = Halve(lo, hi, upper: ((Rank >> level) & 1) == 1).Keep;
        }
        for (var level = _peers.Length - 1; level >= 0; level--)
        {
            var (keep, give) = Halve(ranges[level].Lo, ranges[level].Hi, upper: ((Rank >> level) & 1) == 1);
            var checksum = level == _peers.Length - 1 ? sliceChecksum : null;
            await ExchangeAsync(level, step, kind, data[keep.Lo..keep.Hi], data[give.Lo..give.Hi], checksum, sum: null, blocking, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends <paramref name="send"/> to the partner and receives its frame at the same time (both partners send first): into
    /// <paramref name="receive"/>, or added to <paramref name="sum"/>'s local half. Both are awaited even after a failure; the
    /// first failure closes every connection (<see cref="FailAll"/>) and is rethrown. <paramref name="blocking"/>: the receive is
    /// read on the calling thread, and so is the send where it cannot wait for the partner (<see cref="DataPlaneConnection.TrySendNow"/>).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ExchangeAsync(int level, long step, FrameKind kind, ReadOnlyMemory<float> send,
        Memory<float> receive, uint? checksum, ReceivedSum? sum, bool blocking, CancellationToken cancellationToken)
    {
        var peer = _peers[level];
        var crc = checksum ?? Crc32C.Compute(System.Runtime.InteropServices.MemoryMarshal.AsBytes(send.Span));
        ValueTask sending;
        try
        {
            // A send that streams over TCP goes on without this thread, so the receive may block it either way.
            sending = blocking && peer.TrySendNow(kind, step, send, crc) ? default : peer.SendAsync(kind, step, send, crc, cancellationToken);
        }
        catch
        {
            FailAll();
            throw;
        }
        var receiving = sum is { } s
            ? peer.ReceiveSumAsync(s, Scratch(s.Local.Length), blocking, cancellationToken)
            : peer.ReceiveAsync(receive, blocking, cancellationToken);
        Exception? failure = null;
        try
        {
            await sending.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            failure = e;
        }
        try
        {
            var header = await receiving.ConfigureAwait(false);
            if (failure is null) header.Expect(step, kind, peer.Peer);
        }
        catch (Exception e)
        {
            failure ??= e;
        }
        if (failure is null) return;
        FailAll();
        ExceptionDispatchInfo.Throw(failure);
    }

    private Memory<float> Scratch(int length)
    {
        // Half the largest vector reduced so far (the first level's); sliced for the later levels and smaller vectors.
        if (_scratch.Length < length) _scratch = new float[length];
        return _scratch.AsMemory(0, length);
    }

    public void Dispose() => FailAll();
}
