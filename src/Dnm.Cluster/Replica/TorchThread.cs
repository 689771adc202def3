using System.Collections.Concurrent;

namespace Dnm.Cluster.Replica;

/// <summary>
/// One dedicated OS thread that runs every torch call of a replica, in submission order. A step's tensors
/// live in a dispose scope that StepEngine.Forward opens and Apply/Abort closes; TorchSharp's scopes are
/// thread-bound, so Forward, Backward and Apply must run on the same thread, and nothing else may run in
/// between. Actors and async data-plane code hand work here and await the result.
/// </summary>
public sealed class TorchThread : IDisposable
{
    private readonly BlockingCollection<Action> queue = new();
    private readonly Thread thread;

    public TorchThread(string name)
    {
        thread = new Thread(Loop) { IsBackground = true, Name = name };
        thread.Start();
    }

    public Task<T> RunAsync<T>(Func<T> work)
    {
        // Continuations run on the thread pool, never inline on the torch thread.
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            queue.Add(() =>
            {
                try { done.SetResult(work()); }
                catch (Exception e) { done.SetException(e); }
            });
        }
        catch (InvalidOperationException)
        {
            done.SetException(new ObjectDisposedException(thread.Name, "the replica's torch thread has stopped"));
        }
        return done.Task;
    }

    public Task RunAsync(Action work) => RunAsync(() => { work(); return true; });

    private void Loop()
    {
        foreach (var work in queue.GetConsumingEnumerable())
            work();
    }

    /// <summary>Runs what is queued (typically the engine's Dispose), then ends the thread.</summary>
    public void Dispose()
    {
        queue.CompleteAdding();
        if (Thread.CurrentThread != thread) thread.Join();
        queue.Dispose();
    }
}
