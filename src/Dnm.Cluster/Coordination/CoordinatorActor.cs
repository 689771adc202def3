using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Dnm.Cluster.Hosting;
using Dnm.Cluster.Protocol;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;

namespace Dnm.Cluster.Coordination;

/// <summary>
/// The coordinator: a cluster singleton that owns the run. It gathers workers, forms worlds (membership
/// epochs: ranks, a data-plane listener and a full state transfer), drives the steps of <see cref="RunPlan"/>,
/// retries a step when a worker leaves or fails, verifies replica checksums and writes checkpoints.
/// The torch and socket work is its <see cref="ICoordinatorBackend"/>'s; this class only decides.
/// <para>
/// States (<c>Become</c>), each listing exactly the messages it accepts: <see cref="Starting"/> → <see cref="Gathering"/>
/// → <see cref="Forming"/> ⇄ <see cref="Stepping"/> / <see cref="ComputingBlocks"/> (→ <see cref="SomPretraining"/> → <see cref="Forming"/>) →
/// <see cref="Finishing"/> → <see cref="Stopped"/>; a stop on request goes through <see cref="Suspending"/> to <see cref="Stopped"/>. Membership messages are handled alike in every running state;
/// what a lost member means is the state's own (<see cref="onMemberLost"/>).
/// </para>
/// This file: start-up, membership and the end of the run. CoordinatorActor.World.cs forms worlds;
/// CoordinatorActor.Steps.cs runs steps; CoordinatorActor.Blocks.cs has the workers evaluate and embed in blocks;
/// CoordinatorActor.Reachability.cs follows the cluster's failure detector and decides when joining workers are admitted.
/// </summary>
public sealed partial class CoordinatorActor : ReceiveActor, IWithTimers, IWithUnboundedStash
{
    private const string JoinTimer = "join", WorldTimer = "world", StepTimer = "step", AmongWorkersTimer = "among-workers";

    private readonly CoordinatorSettings settings;
    private readonly ICoordinatorBackend backend;
    private readonly ITrainingObserver observer;
    private readonly RunCompletion? completion;
    private readonly ClusterTelemetry telemetry;
    // Null where nothing records: the coordinator's membership, retry and world-size metrics.
    private readonly DnmMetrics? metrics;
    private readonly Guid runId = Guid.NewGuid();
    private readonly Dictionary<IActorRef, WorkerEntry> workers = new();
    private readonly ILoggingAdapter log = Context.GetLogger();
    private readonly Stopwatch wall = Stopwatch.StartNew();

    private long nextSequence;
    // What the current state does when a member of the current world is lost (its rank and the reason).
    private Action<int, string> onMemberLost = (_, _) => { };
    private ReplicaReady replica = null!;
    // Floats of the smoothed targets the replica sends each world after the state (0: none, or not made yet).
    private int targetsLength;
    private RunPlan plan = null!;
    // When the replica writes a checkpoint: decided here, at the commit points, like everything else of the run.
    private CheckpointPolicy checkpoints = null!;
    private RunState state = new();
    private long adamSteps;
    // False until the first world formed: min-workers only gates the start of the run.
    private bool started;
    private bool membershipChanged;
    private string? lastWorkerProblem;
    // Set by Fail: a second failure (reported while the first is handled) says nothing new.
    private bool stopped;

    public CoordinatorActor(CoordinatorSettings settings, Func<ICoordinatorBackend> backendFactory, ITrainingObserver observer, RunCompletion? completion,
        ClusterTelemetry? telemetry = null)
    {
        this.settings = settings;
        this.observer = observer;
        this.completion = completion;
        this.telemetry = telemetry ?? ClusterTelemetry.None;
        metrics = this.telemetry.Coordinator;
        backend = backendFactory();
        Become(Starting);
    }

    public ITimerScheduler Timers { get; set; } = null!;
    public IStash Stash { get; set; } = null!;

    /// <summary>A fresh backend per incarnation: a restarted or moved singleton starts again from the newest checkpoint.</summary>
    public static Props Props(CoordinatorSettings settings, Func<ICoordinatorBackend> backendFactory, ITrainingObserver observer, RunCompletion? completion,
        ClusterTelemetry? telemetry = null) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(settings, backendFactory, observer, completion, telemetry));

    protected override void PreStart()
    {
        SubscribeToReachability();
        backend.InitializeAsync(runId).PipeTo(Self, success: r => r, failure: e => new InitializeFailed(e));
    }

    protected override void PostStop()
    {
        UnsubscribeFromReachability();
        backend.Dispose();
    }

    /// <summary>The replica is being built; everything else waits.</summary>
    private void Starting()
    {
        Receive<ReplicaReady>(OnReplicaReady);
        Receive<InitializeFailed>(f => Fail($"the coordinator could not start: {f.Error.Message}"));
        ReceiveAny(_ => Stash.Stash());
    }

    /// <summary>Waiting for enough ready workers: min-workers before the first world, one after.</summary>
    private void Gathering()
    {
        onMemberLost = (_, _) => { };
        Membership(onReady: CheckGathering);
        Receive<JoinTimeout>(_ =>
        {
            var ready = workers.Values.Count(Eligible);
            Fail($"only {ready} of the {Needed} workers needed were ready after {settings.JoinTimeout.TotalSeconds:0}s" +
                 (lastWorkerProblem is null ? " (is the worker role running and pointed at the same seeds?)" : $"; last worker problem: {lastWorkerProblem}"));
        });
        Receive<SuspendRun>(_ => SuspendNow());
        Common();
    }

    /// <summary>SOM pre-training runs on the replica; the workers are idle, and the next world brings them its W.</summary>
    private void SomPretraining()
    {
        onMemberLost = (_, _) => { };
        Membership();
        Receive<SomPretrained>(s =>
        {
            state = s.State;
            targetsLength = s.TargetsLength;
            checkpoints.Saved(s.State); // the replica checkpointed the end of SOM pre-training
            if (plan.EvaluatesAfterSomPretraining) RequestEvaluation(final: false, epoch: 0);
            Advance();
        });
        Receive<SomPretrainFailed>(f => Fail($"the coordinator's replica failed (SOM pre-training): {f.Error.Message}"));
        Receive<SuspendRun>(_ => SuspendAfterSomPretraining());
        Common();
    }

    /// <summary>The replica writes the final metrics, files and pictures from the workers' tally.</summary>
    private void Finishing()
    {
        onMemberLost = (_, _) => { };
        Membership();
        Receive<RunCompleted>(Finished);
        Receive<FinishFailed>(f => Fail($"the coordinator's replica failed (finish): {f.Error.Message}"));
        Receive<SuspendRun>(_ => { }); // the run is ending anyway
        Common();
    }

    /// <summary>
    /// After the end of the run the actor stays (idle) until the node shuts down: a stopped singleton would only make
    /// every proxy in the cluster search for it.
    /// </summary>
    private void Stopped() => ReceiveAny(_ => { });

    /// <summary>
    /// What every running state accepts besides membership: replica results that need no decision, replica failures
    /// (fatal in any state), and replies or timers of a world, step or state that is over (ignored).
    /// </summary>
    private void Common()
    {
        Receive<CheckpointSaved>(_ => { });   // the backend has told the observer
        Receive<CheckpointSkipped>(_ => { }); // so it has of a failed write
        Receive<EvaluationReport>(_ => { });  // likewise
        Receive<CheckpointFailed>(f => Fail($"the coordinator's replica failed (checkpoint of step {f.GlobalStep}): {f.Error.Message}"));
        Receive<EvaluateFailed>(f => Fail($"the coordinator's replica failed (evaluation at step {f.GlobalStep}): {f.Error.Message}"));
        Receive<ApplyFailed>(f => Fail($"the coordinator's replica failed (apply of step {f.Step}): {f.Error.Message}"));
        Receive<WorldSynced>(_ => { });
        Receive<WorldJoined>(_ => { });
        Receive<WorldJoinFailed>(_ => { });
        Receive<WorldSyncFailed>(_ => { });
        Receive<WorldTimeout>(_ => { });
        Receive<StepReduced>(_ => { });
        Receive<StepApplied>(_ => { });
        Receive<StepCompleted>(c => log.Debug("ignored StepCompleted of step {0}, epoch {1}, rank {2}: no step in flight", c.Step, c.MembershipEpoch, c.Rank));
        Receive<StepFailed>(_ => { });
        Receive<ReduceFailed>(_ => { });
        Receive<StepTimeout>(_ => { });
        Receive<AmongWorkersFailed>(_ => { });
        Receive<JoinTimeout>(_ => { });
        Receive<BlocksEvaluated>(_ => { });
        Receive<BlockEmbedded>(_ => { });
        Receive<BlocksFailed>(_ => { });
        Receive<BlocksTimeout>(_ => { });
    }

    private int Needed => started ? 1 : settings.MinWorkers;

    private void OnReplicaReady(ReplicaReady ready)
    {
        replica = ready;
        targetsLength = ready.TargetsLength;
        plan = new RunPlan(ready.Config, ready.SampleCount);
        checkpoints = new CheckpointPolicy(ready.Config);
        checkpoints.Saved(ready.State);
        state = ready.State;
        adamSteps = ready.AdamSteps;
        observer.OnMessage(ready.ResumedFrom is null
            ? $"coordinator ready: run {runId}, {ready.SampleCount} samples, waiting for {settings.MinWorkers} worker(s)"
            : $"coordinator ready: run {runId}, resumed from {ready.ResumedFrom} (global step {ready.State.GlobalStep})");
        Stash.UnstashAll();
        EnterGathering();
    }

    private void EnterGathering()
    {
        CloseWorld();
        Become(Gathering);
        Timers.StartSingleTimer(JoinTimer, JoinTimeout.Instance, settings.JoinTimeout);
        CheckGathering();
    }

    private void CheckGathering()
    {
        if (workers.Values.Count(Eligible) < Needed) return;
        Timers.Cancel(JoinTimer);
        Advance();
    }

    /// <summary>Follows the plan until something asynchronous has to happen.</summary>
    private void Advance()
    {
        // A stop on request waited for the step or SOM pre-training in flight: the state is complete now.
        if (suspending)
        {
            CheckpointAndStop();
            return;
        }
        while (true)
        {
            if (blockJob is not null)
            {
                // The run holds at its step until every block of the job is in; the workers compute them.
                if (NeedsWorld) Form();
                else BeginBlocks();
                return;
            }
            switch (plan.Next(state))
            {
                case EnterPhase e:
                    state = e.State;
                    continue;
                case PlanFinished:
                    RequestEvaluation(final: true, replica.Config.Epochs);
                    if (blockJob is null) return; // failed: nothing to evaluate on
                    continue;
                case PretrainSom:
                    RequestSomPretraining();
                    if (blockJob is null) return; // no embeddings needed: it runs on the replica now
                    continue;
                case PlannedStep when NeedsWorld:
                    Form();
                    return;
                case PlannedStep step:
                    BeginStep(step);
                    return;
            }
        }
    }

    /// <summary>
    /// Registration, readiness, reachability and loss of workers: the same in every running state. <paramref name="onReady"/>
    /// runs when a worker becomes ready (or reachable again); <paramref name="onUnreachable"/> with the rank of a member of the
    /// current world whose node the failure detector reports unreachable; a lost member of the current world is the state's
    /// <see cref="onMemberLost"/>.
    /// </summary>
    private void Membership(Action? onReady = null, Action<int>? onUnreachable = null)
    {
        Reachability(onReady, onUnreachable);
        Receive<RegisterWorker>(Register);
        Receive<WorkerReady>(_ => workers.ContainsKey(Sender), r =>
        {
            var entry = workers[Sender];
            if (r.RunId != runId) return;
            var problem = Mismatch(r);
            if (problem is not null)
            {
                lastWorkerProblem = problem;
                Remove(entry);
                Sender.Tell(new RegistrationRejected(runId, problem, entry.Nonce));
                observer.OnMessage($"rejected worker {entry.Id}: {problem}");
                return;
            }
            if (entry.Ready) return;
            entry.Ready = true;
            entry.PeerEndpoint = r.PeerEndpoint;
            // A join is a membership change, as a loss is (dnm_cluster_membership_changes_total).
            metrics?.RecordMembershipChange();
            observer.OnMessage($"worker {entry.Id} ready ({workers.Values.Count(w => w.Ready)} ready)");
            onReady?.Invoke();
        });
        Receive<WorkerFailed>(_ => workers.ContainsKey(Sender), f =>
        {
            var entry = workers[Sender];
            lastWorkerProblem = $"worker {entry.Id}: {f.Reason}";
            Remove(entry);
            MemberLost(entry, f.Reason);
        });
        Receive<Terminated>(t => workers.ContainsKey(t.ActorRef), t =>
        {
            var entry = workers[t.ActorRef];
            Remove(entry);
            MemberLost(entry, "it stopped or its node left the cluster");
        });
    }

    private void Register(RegisterWorker r)
    {
        if (r.ProtocolVersion != ClusterProtocol.Version || r.DnmVersion != settings.DnmVersion)
        {
            var reason = $"worker {r.WorkerId} runs Dnm {r.DnmVersion} (cluster protocol {r.ProtocolVersion}) but the coordinator runs " +
                         $"Dnm {settings.DnmVersion} (protocol {ClusterProtocol.Version}); run the same build on every node";
            lastWorkerProblem = reason;
            Sender.Tell(new RegistrationRejected(runId, reason, r.Nonce));
            observer.OnMessage(reason);
            return;
        }
        if (!workers.ContainsKey(Sender))
        {
            if (workers.Values.FirstOrDefault(w => w.Id == r.WorkerId) is { } holder)
            {
                if (!holder.Node.Equals(Sender.Path.Address))
                {
                    // Ids are the node's address (host:port/wN): another node cannot hold one, and must not drop the live holder.
                    var clash = $"worker id {r.WorkerId} is already registered from another node ({holder.Ref.Path}, this one {Sender.Path}); " +
                                "a worker's id is its node's advertised host:port (--host, --port; DNM_HOST, DNM_PORT): give every node its own";
                    lastWorkerProblem = clash;
                    Sender.Tell(new RegistrationRejected(runId, clash, r.Nonce));
                    observer.OnMessage($"rejected worker {r.WorkerId}: {clash}");
                    return;
                }
                // The same node with another worker actor: its process or actor system restarted (one address holds one
                // system), so the old worker is dead. Drop it now rather than when the cluster downs the old incarnation.
                Drop(holder, $"superseded: it registered again from a restarted node ({Sender.Path})");
            }
            workers[Sender] = new WorkerEntry(r.WorkerId, Sender, nextSequence++, r.Nonce);
            Context.Watch(Sender);
            observer.OnMessage($"worker {r.WorkerId} registered ({r.Device})");
        }
        // Registration is retried until accepted, so a repeat gets the same answer.
        Sender.Tell(new RegistrationAccepted(runId, replica.Config.ToJson(), replica.SampleCount, replica.Shape, replica.StatsLength, workers[Sender].Nonce));
    }

    private string? Mismatch(WorkerReady r)
    {
        if (r.Dataset is { } theirs && replica.Dataset is { } ours && theirs.Sha256 != ours.Sha256)
            return $"worker {r.WorkerId} reads a different dataset: digest {theirs.Short} of {theirs.Source}, but the coordinator's is " +
                   $"{ours.Short} of {ours.Source}; every node must read the same files (compare them, e.g. with sha256sum, and copy the coordinator's)";
        if (r.Shape != replica.Shape || r.SampleCount != replica.SampleCount)
            return $"worker {r.WorkerId} has {r.SampleCount} training samples of {r.Shape} but the coordinator has {replica.SampleCount} of {replica.Shape}: " +
                   "every node must see the same dataset";
        if (r.StatsLength != replica.StatsLength)
            return $"worker {r.WorkerId} built a model whose step statistics hold {r.StatsLength} floats, the coordinator's {replica.StatsLength}: " +
                   "a different model shape (another Dnm build?)";
        return null;
    }

    private void Remove(WorkerEntry entry)
    {
        workers.Remove(entry.Ref);
        benched.Remove(entry);
        Context.Unwatch(entry.Ref);
    }

    /// <summary>Removes a worker that failed, and tells it (it may register again as a new worker).</summary>
    private void Drop(WorkerEntry entry, string reason)
    {
        if (Evict(entry, reason)) MemberLost(entry, reason);
    }

    /// <summary>Removes and tells the worker, without reacting yet (the caller re-forms once for several).</summary>
    private bool Evict(WorkerEntry entry, string reason)
    {
        if (!workers.ContainsKey(entry.Ref)) return false;
        Remove(entry);
        entry.Ref.Tell(new WorkerDropped(runId, reason));
        observer.OnMessage($"dropped worker {entry.Id}: {reason}");
        return true;
    }

    /// <summary>A worker is gone. A step or world in flight that counted on it is abandoned and retried without it.</summary>
    private void MemberLost(WorkerEntry entry, string reason)
    {
        metrics?.RecordMembershipChange();
        observer.OnMessage($"worker {entry.Id} left: {reason}");
        var rank = world?.RankOf(entry) ?? -1;
        if (rank < 0) return; // not in the current world: nothing to re-form for
        membershipChanged = true;
        onMemberLost(rank, $"worker {entry.Id} (rank {rank}) left: {reason}");
    }

    private void Finished(RunCompleted c)
    {
        observer.OnMessage($"run finished at global step {c.GlobalStep}; final checkpoint {c.FinalCheckpoint}");
        var steps = Math.Max(1, timedSteps);
        if (timedSteps > 0)
            observer.OnMessage($"{timedSteps} distributed steps: {(stepTime / steps).TotalMilliseconds:F1} ms a step, of which " +
                               $"{(reduceTime / steps).TotalMilliseconds:F1} ms in all-reduces ({100 * reduceTime / stepTime:F0} %), " +
                               $"{(transferTime / steps).TotalMilliseconds:F1} ms of it after the slowest rank's contribution arrived ({100 * transferTime / stepTime:F0} %)");
        // Before the announcement: this node's workers complete the same RunCompletion, with less to say.
        completion?.Succeed(new ClusterRunResult(c.GlobalStep, c.Checksum, c.RunDirectory, c.FinalCheckpoint, wall.Elapsed,
            timedSteps, stepTime / steps, reduceTime / steps, c.Final, transferTime / steps));
        Announce(new RunFinished(runId, c.GlobalStep, c.RunDirectory));
        stopped = true;
        Become(Stopped);
        backend.Dispose();
    }

    private void Fail(string reason)
    {
        if (stopped) return;
        stopped = true;
        log.Error("run failed: {0}", reason);
        observer.OnMessage($"error: {reason}");
        CloseWorld();
        completion?.Fail(new ClusterRunException(reason));
        Announce(new RunFailed(runId, reason));
        Become(Stopped);
        backend.Dispose();
    }

    /// <summary>Tells every worker, and with <see cref="CoordinatorSettings.AnnounceToCluster"/> every node's monitor.</summary>
    private void Announce(object message)
    {
        foreach (var w in workers.Keys) w.Tell(message);
        if (!settings.AnnounceToCluster) return;
        foreach (var member in Akka.Cluster.Cluster.Get(Context.System).State.Members)
            Context.ActorSelection(new RootActorPath(member.Address) / "user" / NodeMonitor.Name).Tell(message);
    }
}
