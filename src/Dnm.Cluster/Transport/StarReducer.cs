using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Dnm.Cluster.Transport;

/// <summary>
/// Coordinator side of the star all-reduce: one data-plane connection per worker (rank 0..N-1). It
/// receives every worker's vector concurrently, sums them in rank order — so the result is bitwise the
/// same whatever order they arrive in — and broadcasts. Receive buffers are kept between steps, so a
/// steady-state step allocates nothing. Owns (and disposes) its connections.
/// </summary>
public sealed class StarReducer : IAllReducer, IDisposable
{
    /// <summary>The rank the coordinator announces on its data-plane connections (it holds no shard).</summary>
    public const int CoordinatorRank = -1;

    private readonly DataPlaneConnection[] _workers;
    private readonly ValueTask<FrameHeader>[] _receives;
    private readonly ValueTask[] _sends;
    private readonly float[][] _scratch;
    // When each rank's frame of the gather in flight (or the last one) arrived, as Stopwatch timestamps (0: not yet), and
    // when that gather began (0: none yet). Written by the receives, read by Arrivals from any thread.
    private readonly long[] _arrived;
    private long _gatherStarted;

    /// <summary>Takes connections whose remote ranks are exactly 0..N-1, in any order.</summary>
    public StarReducer(IEnumerable<DataPlaneConnection> workers)
    {
        var list = workers.ToList();
        if (list.Count == 0)
            throw new ArgumentException("A star reducer needs at least one worker.", nameof(workers));
        _workers = new DataPlaneConnection[list.Count];
        foreach (var connection in list)
        {
            var rank = connection.RemoteRank;
            if (rank < 0 || rank >= list.Count)
                throw new DataPlaneException(connection.Peer, "Rank", $"Worker {connection.Peer} has rank {rank}, outside 0..{list.Count - 1}.");
            if (_workers[rank] is { } other)
                throw new DataPlaneException(connection.Peer, "Rank", $"Rank {rank} connected twice: {other.Peer} and {connection.Peer}.");
            _workers[rank] = connection;
        }
        _receives = new ValueTask<FrameHeader>[list.Count];
        _sends = new ValueTask[list.Count];
        _scratch = new float[list.Count][];
        _arrived = new long[list.Count];
    }

    /// <summary>Accepts connections until ranks 0..<paramref name="workerCount"/>-1 have all joined.</summary>
    public static async Task<StarReducer> AcceptWorkersAsync(DataPlaneListener listener, int workerCount, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workerCount, 1);
        var accepted = new List<DataPlaneConnection>(workerCount);
        try
        {
            while (accepted.Count < workerCount)
                accepted.Add(await listener.AcceptAsync(cancellationToken).ConfigureAwait(false));
            return new StarReducer(accepted);
        }
        catch
        {
            foreach (var connection in accepted)
                connection.Dispose();
            throw;
        }
    }

    public int WorkerCount => _workers.Length;

    /// <summary>Connections indexed by rank (for byte counters).</summary>
    public IReadOnlyList<DataPlaneConnection> Workers => _workers;

    /// <inheritdoc />
    /// <remarks>Reduces into <paramref name="data"/>, then broadcasts it back to every worker.</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask AllReduceAsync(long step, FrameKind kind, Memory<float> data, CancellationToken cancellationToken = default)
    {
        await ReduceAsync(step, kind, data, cancellationToken).ConfigureAwait(false);
        await BroadcastAsync(step, kind, data, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Receives one <paramref name="kind"/> frame of <paramref name="step"/> from every worker and writes
    /// their rank-ordered sum ((v0 + v1) + v2) + ... into <paramref name="sum"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReduceAsync(long step, FrameKind kind, Memory<float> sum, CancellationToken cancellationToken = default)
    {
        var length = sum.Length;
        // All receives run at once; rank 0 lands directly in the sum, the others in kept scratch buffers.
        for (var rank = 0; rank < _workers.Length; rank++)
            _receives[rank] = _workers[rank].ReceiveAsync(rank == 0 ? sum : Scratch(rank, length), cancellationToken);

        // Await in rank order and add each as soon as its turn comes: the additions' order is the ranks',
        // never the arrival order.
        await AwaitReceivesAsync(step, kind, rank =>
        {
            if (rank > 0)
                RankOrderedSum.AddInPlace(sum.Span, _scratch[rank].AsSpan(0, length));
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Receives one <paramref name="kind"/> frame of <paramref name="step"/> from every worker, rank r's into
    /// <paramref name="destinations"/>[r] (whose length is the frame's expected length; 0 for a rank with nothing to
    /// send). The caller sums them: the arithmetic (a fixed tree over micro-batches) is not the transport's.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask GatherAsync(long step, FrameKind kind, IReadOnlyList<Memory<float>> destinations, CancellationToken cancellationToken = default)
    {
        BeginGather(destinations);
        for (var rank = 0; rank < _workers.Length; rank++)
            _receives[rank] = Stamped(rank, _workers[rank].ReceiveAsync(destinations[rank], cancellationToken));
        await AwaitReceivesAsync(step, kind, arrived: null).ConfigureAwait(false);
    }

    /// <summary>
    /// <see cref="GatherAsync"/>, except that it fails as soon as one rank's frame fails, naming that rank, instead of awaiting
    /// the ranks in order: in a reduction among the workers (<see cref="RecursiveHalvingReducer"/>) a rank lost midway leaves
    /// the others nothing to send, so their frames would never come. The receives still pending are ended by the closing
    /// of the world that a failed gather always leads to.
    /// </summary>
    public async Task GatherUntilFirstFailureAsync(long step, FrameKind kind, IReadOnlyList<Memory<float>> destinations, CancellationToken cancellationToken = default)
    {
        BeginGather(destinations);
        var pending = new List<Task>(_workers.Length);
        for (var rank = 0; rank < _workers.Length; rank++)
            pending.Add(ReceiveOneAsync(rank, step, kind, destinations[rank], cancellationToken));
        while (pending.Count > 0)
        {
            var done = await Task.WhenAny(pending).ConfigureAwait(false);
            pending.Remove(done);
            if (done.IsCompletedSuccessfully) continue;
            foreach (var rest in pending)
                _ = rest.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            await done.ConfigureAwait(false);
        }
    }

    private async Task ReceiveOneAsync(int rank, long step, FrameKind kind, Memory<float> destination, CancellationToken cancellationToken)
    {
        var header = await Stamped(rank, _workers[rank].ReceiveAsync(destination, cancellationToken)).ConfigureAwait(false);
        header.Expect(step, kind, _workers[rank].Peer);
    }

    /// <summary>Checks the destinations and starts the arrival times of a gather.</summary>
    private void BeginGather(IReadOnlyList<Memory<float>> destinations)
    {
        if (destinations.Count != _workers.Length)
            throw new ArgumentException($"{destinations.Count} destinations for {_workers.Length} workers", nameof(destinations));
        for (var rank = 0; rank < _workers.Length; rank++)
            Volatile.Write(ref _arrived[rank], 0);
        Volatile.Write(ref _gatherStarted, Stopwatch.GetTimestamp());
    }

    /// <summary>
    /// How long after the start of the latest <see cref="GatherAsync"/> each rank's frame arrived; null for a rank whose frame
    /// has not (a straggler, if the gather is still waiting). Null before the first gather. Safe to call from any thread.
    /// </summary>
    public TimeSpan?[]? Arrivals()
    {
        var started = Volatile.Read(ref _gatherStarted);
        if (started == 0)
            return null;
        var arrivals = new TimeSpan?[_workers.Length];
        for (var rank = 0; rank < arrivals.Length; rank++)
        {
            var at = Volatile.Read(ref _arrived[rank]);
            arrivals[rank] = at == 0 ? null : Stopwatch.GetElapsedTime(started, Math.Max(at, started));
        }
        return arrivals;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<FrameHeader> Stamped(int rank, ValueTask<FrameHeader> receive)
    {
        var header = await receive.ConfigureAwait(false);
        Volatile.Write(ref _arrived[rank], Stopwatch.GetTimestamp());
        return header;
    }

    /// <summary>
    /// Awaits the receives in flight in rank order, checks each header and calls <paramref name="arrived"/> with its rank.
    /// Every receive is awaited, even after a failure, so none is left running; the first failure is rethrown.
    /// </summary>
    private async ValueTask AwaitReceivesAsync(long step, FrameKind kind, Action<int>? arrived)
    {
        Exception? failure = null;
        for (var rank = 0; rank < _workers.Length; rank++)
        {
            try
            {
                var header = await _receives[rank].ConfigureAwait(false);
                if (failure is not null)
                    continue;
                header.Expect(step, kind, _workers[rank].Peer);
                arrived?.Invoke(rank);
            }
            catch (Exception ex)
            {
                failure ??= ex;
            }
            finally
            {
                _receives[rank] = default;
            }
        }
        if (failure is not null)
            ExceptionDispatchInfo.Throw(failure);
    }

    /// <summary>Sends <paramref name="data"/> to every worker; the checksum is computed once for all.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask BroadcastAsync(long step, FrameKind kind, ReadOnlyMemory<float> data, CancellationToken cancellationToken = default)
    {
        var checksum = Crc32C.Compute(MemoryMarshal.AsBytes(data.Span));
        for (var rank = 0; rank < _workers.Length; rank++)
            _sends[rank] = _workers[rank].SendAsync(kind, step, data, checksum, cancellationToken);

        Exception? failure = null;
        for (var rank = 0; rank < _workers.Length; rank++)
        {
            try
            {
                await _sends[rank].ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                failure ??= ex;
            }
            finally
            {
                _sends[rank] = default;
            }
        }
        if (failure is not null)
            ExceptionDispatchInfo.Throw(failure);
    }

    private Memory<float> Scratch(int rank, int length)
    {
        // Grown to the largest vector seen (gradients) and sliced for smaller ones (soft counts).
        if (_scratch[rank] is not { } buffer || buffer.Length < length)
            _scratch[rank] = buffer = new float[length];
        return buffer.AsMemory(0, length);
    }

    public void Dispose()
    {
        foreach (var worker in _workers)
            worker.Dispose();
    }
}
