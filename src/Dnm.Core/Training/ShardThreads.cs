using System.Runtime.ExceptionServices;

namespace Dnm.Core.Training;

/// <summary>
/// Dedicated threads for batch shards. <see cref="Run"/> hands shard j to thread j mod N and waits
/// for all of them: two hand-offs per phase instead of the thousands of fork/join barriers that
/// torch's intra-op threads take per step (slow_conv2d's weight gradient alone calls a
/// multi-threaded GEMM per sample). Shard j always runs on the same thread because its tensors
/// live in a dispose scope of that thread: TorchSharp's scopes, like torch's grad mode, are thread-local.
/// <para>
/// OpenMP's thread count is per thread too: a thread that never set it gets one per core, and the BLAS and
/// oneDNN kernels a shard calls (they do not go through torch's own lazy initialisation) fork a team of that
/// size whose members spin after every kernel. The constructor's <c>onStart</c> runs first on each thread; on the
/// CPU the engine passes <c>torch.set_num_threads(1)</c> there. Without it, 4 one-thread workers and their
/// coordinator on 2 cores spent 72 % of a worker's CPU spinning in libgomp, at 490 ms a step instead of 48.
/// </para>
/// </summary>
internal sealed class ShardThreads : IDisposable
{
    private readonly Thread[] threads;
    private readonly SemaphoreSlim[] start;
    private readonly CountdownEvent done = new(0);
    private readonly Exception?[] failures;
    private Action<int>? work;
    private int items;
    private volatile bool stopping;

    public ShardThreads(int count, string name, Action? onStart = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        start = Enumerable.Range(0, count).Select(_ => new SemaphoreSlim(0)).ToArray();
        failures = new Exception?[count];
        threads = Enumerable.Range(0, count).Select(i => new Thread(() => Loop(i, onStart))
        {
            // Background: an engine that is never disposed must not keep the process alive.
            IsBackground = true,
            Name = $"{name} shard {i}",
        }).ToArray();
        foreach (var t in threads) t.Start();
    }

    public int Count => threads.Length;

    /// <summary>
    /// Runs <paramref name="body"/>(j) for every shard j &lt; <paramref name="shards"/>, shard j on thread
    /// j mod <see cref="Count"/> (a thread's shards in increasing order); rethrows the first failure.
    /// </summary>
    public void Run(int shards, Action<int> body)
    {
        ObjectDisposedException.ThrowIf(stopping, this);
        if (shards <= 0) return;
        var active = Math.Min(shards, threads.Length);
        work = body;
        items = shards;
        Array.Clear(failures);
        done.Reset(active);
        for (int i = 0; i < active; i++) start[i].Release();
        done.Wait();
        work = null;
        foreach (var f in failures)
            if (f is not null) ExceptionDispatchInfo.Capture(f).Throw();
    }

    private void Loop(int index, Action? onStart)
    {
        onStart?.Invoke();
        while (true)
        {
            start[index].Wait();
            if (stopping) return;
            try
            {
                for (int j = index; j < items; j += threads.Length) work!(j);
            }
            catch (Exception e)
            {
                failures[index] = e;
            }
            finally
            {
                done.Signal();
            }
        }
    }

    public void Dispose()
    {
        if (stopping) return;
        stopping = true;
        foreach (var s in start) s.Release();
        foreach (var t in threads) t.Join();
        foreach (var s in start) s.Dispose();
        done.Dispose();
    }
}
