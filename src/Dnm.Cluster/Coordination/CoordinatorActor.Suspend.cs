using Akka.Actor;
using Akka.Event;
using Dnm.Core.Training;

namespace Dnm.Cluster.Coordination;

// Stopping on request (SIGTERM, Ctrl+C: SuspendRun). The run's state is only ever a committed step's, so the
// coordinator writes the checkpoint of the last complete step and ends; the same command started again resumes from it,
// and its workers (which only see their coordinator leave) rejoin it. A step in flight that has not committed is
// abandoned (its world closed, as when a worker is lost); one that has committed completes first. SOM pre-training
// runs to its end first; the end of the run (Finishing) is not interrupted at all.
public sealed partial class CoordinatorActor
{
    private bool suspending;

    /// <summary>No step in flight (gathering, forming a world): checkpoint and stop now.</summary>
    private void SuspendNow()
    {
        if (BeginSuspending()) CheckpointAndStop();
    }

    /// <summary>A step in flight: abandoned before its commit point; after it, <see cref="Advance"/> stops once it completes.</summary>
    private void SuspendWhileStepping()
    {
        if (!BeginSuspending()) return;
        if (round is { Reduced: false } r)
        {
            observer.OnMessage($"step {r.Start.Step} abandoned: the coordinator is stopping");
            CheckpointAndStop();
        }
    }

    /// <summary>SOM pre-training runs on the replica: <see cref="Advance"/> stops when it is done.</summary>
    private void SuspendAfterSomPretraining() => BeginSuspending();

    private bool BeginSuspending()
    {
        if (suspending || stopped) return false;
        suspending = true;
        observer.OnMessage($"stopping on request at global step {state.GlobalStep}: the checkpoint of the last complete step is written, then this node leaves");
        return true;
    }

    private void CheckpointAndStop()
    {
        CloseWorld();
        Become(Suspending);
        var saved = state;
        checkpoints.Saved(saved);
        // Always written (an identical rewrite where this state's checkpoint exists): queued on the replica's thread
        // behind any write still in flight, so when it is done every write of the run is.
        backend.SaveCheckpointAsync(saved).PipeTo(Self, success: c => new SuspendCheckpointed(saved, c), failure: e => new SuspendCheckpointFailed(saved, e));
    }

    /// <summary>Waiting for the stop's checkpoint; nothing else matters any more.</summary>
    private void Suspending()
    {
        Receive<SuspendCheckpointed>(c => EndSuspended(c.State, c.Saved is { } s
            ? new RunStoppedException($"stopped at global step {c.State.GlobalStep}; checkpoint {s.Path}", c.State.GlobalStep, s.Path)
            : new RunStoppedException($"stopped at global step {c.State.GlobalStep}; its checkpoint could not be written, the run resumes from the last one that verifies",
                c.State.GlobalStep)));
        Receive<SuspendCheckpointFailed>(f => EndSuspended(f.State, new RunStoppedException(
            $"stopped at global step {f.State.GlobalStep}; its checkpoint failed ({f.Error.Message}), the run resumes from the last one that verifies", f.State.GlobalStep)));
        ReceiveAny(_ => { });
    }

    private void EndSuspended(RunState at, RunStoppedException stop)
    {
        observer.OnMessage(stop.Message);
        stopped = true;
        // No RunFinished: the workers see this node leave, and rejoin the coordinator when it is started again.
        completion?.Stopped(stop);
        Become(Stopped);
        backend.Dispose();
        log.Info("run stopped on request at global step {0}", at.GlobalStep);
    }
}
