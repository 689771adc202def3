using Akka.Actor;
using Akka.Event;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster.Workers;

/// <summary>Who a worker is and how it looks for the coordinator.</summary>
public sealed record WorkerSettings(string WorkerId, string Device)
{
    /// <summary>How often an unregistered worker offers itself to the singleton proxy.</summary>
    public TimeSpan RegisterInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a worker that no coordinator has answered says so in the log.</summary>
    public TimeSpan UnansweredWarningEvery { get; init; } = TimeSpan.FromSeconds(30);

    public string DnmVersion { get; init; } = ClusterProtocol.DnmVersion;
}

/// <summary>
/// One worker: registers with the coordinator singleton (through its proxy, again after a failover or a
/// drop), prepares its replica, joins the worlds the coordinator forms and runs the steps it is sent. The
/// replica's work happens in its <see cref="IWorkerBackend"/>; results come back as messages.
/// </summary>
public sealed class WorkerActor : UntypedActor, IWithTimers
{
    private const string RegisterTimer = "register";

    private readonly WorkerSettings settings;
    private readonly IActorRef coordinatorProxy;
    private readonly IWorkerBackend backend;
    private readonly RunCompletion? completion;
    private readonly ILoggingAdapter log = Context.GetLogger();
    private IActorRef? coordinator;
    private Guid runId;
    private long epoch = -1;
    private int rank = -1;
    // New for every registration: an answer that does not echo it did not come through the proxy from the singleton.
    private Guid nonce;
    private DateTime registeringSince;
    private TimeSpan nextUnansweredWarning;

    private sealed record RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }

    private sealed record Prepared(Guid RunId, WorkerPrepared Info);
    private sealed record PrepareFailed(Guid RunId, Exception Error);
    private sealed record Joined(FormWorld World, ulong Checksum);
    private sealed record JoinFailed(FormWorld World, Exception Error);
    private sealed record StepDone(StartStep Step, WorkerStepResult Result);
    private sealed record StepError(StartStep Step, Exception Error);
    private sealed record Evaluated(EvaluateBlocks Request, byte[] Tally);
    private sealed record EvaluateError(EvaluateBlocks Request, Exception Error);
    private sealed record Embedded(EmbedBlocks Request);
    private sealed record EmbedError(EmbedBlocks Request, Exception Error);

    public WorkerActor(WorkerSettings settings, IActorRef coordinatorProxy, Func<IWorkerBackend> backendFactory, RunCompletion? completion)
    {
        this.settings = settings;
        this.coordinatorProxy = coordinatorProxy;
        this.completion = completion;
        backend = backendFactory();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(WorkerSettings settings, IActorRef coordinatorProxy, Func<IWorkerBackend> backendFactory, RunCompletion? completion) =>
        Akka.Actor.Props.Create(() => new WorkerActor(settings, coordinatorProxy, backendFactory, completion));

    protected override void PreStart() => StartRegistering();

    protected override void PostStop() => backend.Dispose();

    private void StartRegistering()
    {
        coordinator = null;
        nonce = Guid.NewGuid();
        epoch = -1;
        registeringSince = DateTime.UtcNow;
        nextUnansweredWarning = settings.UnansweredWarningEvery;
        Timers.StartPeriodicTimer(RegisterTimer, RegisterTick.Instance, TimeSpan.Zero, settings.RegisterInterval);
    }

    /// <summary>
    /// A worker waits for a coordinator as long as it takes (one may start later, or take over after a
    /// failover), but says so every <see cref="WorkerSettings.UnansweredWarningEvery"/>: a cluster without a
    /// node of the coordinator role, or a coordinator that rejects nothing and answers nothing, would otherwise
    /// look like a quiet worker.
    /// </summary>
    private void WarnIfUnanswered()
    {
        var waited = DateTime.UtcNow - registeringSince;
        if (waited < nextUnansweredWarning) return;
        nextUnansweredWarning += settings.UnansweredWarningEvery;
        log.Warning("worker {0}: no coordinator has answered for {1:0} s; still offering itself (is a node with --role coordinator " +
                    "or both up in this cluster, with the run's config?)", settings.WorkerId, waited.TotalSeconds);
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case RegisterTick:
                WarnIfUnanswered();
                coordinatorProxy.Tell(new RegisterWorker(settings.WorkerId, ClusterProtocol.Version, settings.DnmVersion, settings.Device, nonce));
                break;
            case RegistrationAccepted a when a.Nonce != nonce:
                Drop(a);
                break;
            case RegistrationAccepted a:
                if (coordinator is not null && Sender.Equals(coordinator) && a.RunId == runId) break; // a repeat answer
                if (coordinator is not null) Context.Unwatch(coordinator);
                coordinator = Sender;
                runId = a.RunId;
                // Watching the coordinator: when its node goes, the singleton moves and this worker registers again.
                Context.Watch(coordinator);
                Timers.Cancel(RegisterTimer);
                backend.PrepareAsync(a).PipeTo(Self, success: p => new Prepared(a.RunId, p), failure: e => new PrepareFailed(a.RunId, e));
                break;
            case Prepared p when p.RunId == runId && coordinator is not null:
                coordinator.Tell(new WorkerReady(runId, settings.WorkerId, p.Info.SampleCount, p.Info.Shape, p.Info.StatsLength, p.Info.Dataset,
                    p.Info.PeerEndpoint));
                break;
            case PrepareFailed f when f.RunId == runId && coordinator is not null:
                log.Error(f.Error, "worker {0} could not prepare", settings.WorkerId);
                coordinator.Tell(new WorkerFailed(runId, settings.WorkerId, f.Error.Message));
                Stop(new ClusterRunException($"worker {settings.WorkerId} could not prepare: {f.Error.Message}", f.Error));
                break;
            case RegistrationRejected r when r.Nonce != nonce:
                Drop(r);
                break;
            case RegistrationRejected r:
                Stop(new ClusterRunException($"the coordinator refused worker {settings.WorkerId}: {r.Reason}"));
                break;
            case FormWorld w when FromCoordinator(w.RunId):
                epoch = w.MembershipEpoch;
                rank = w.Rank;
                backend.JoinWorldAsync(w).PipeTo(Self, success: c => new Joined(w, c), failure: e => new JoinFailed(w, e));
                break;
            case Joined j when j.World.MembershipEpoch == epoch && coordinator is not null:
                coordinator.Tell(new WorldJoined(runId, epoch, rank, j.Checksum));
                break;
            case JoinFailed j when j.World.MembershipEpoch == epoch && coordinator is not null:
                log.Warning("worker {0} could not join membership epoch {1}: {2}", settings.WorkerId, epoch, j.Error.Message);
                coordinator.Tell(new WorldJoinFailed(runId, epoch, rank, j.Error.Message));
                break;
            case StartStep s when FromCoordinator(s.RunId) && s.MembershipEpoch == epoch:
                backend.RunStepAsync(s).PipeTo(Self, success: r => new StepDone(s, r), failure: e => new StepError(s, e));
                break;
            case StepDone d when d.Step.MembershipEpoch == epoch && coordinator is not null:
                coordinator.Tell(new StepCompleted(runId, epoch, d.Step.Step, rank, d.Result.Checksum, d.Result.ReduceTime.TotalSeconds));
                break;
            case StepError e when e.Step.MembershipEpoch == epoch && coordinator is not null:
                // Usually the coordinator closed the world (another worker left): it has moved on and ignores this.
                log.Info("worker {0}: step {1} aborted: {2}", settings.WorkerId, e.Step.Step, e.Error.Message);
                coordinator.Tell(new StepFailed(runId, epoch, e.Step.Step, rank, e.Error.Message,
                    AmongWorkers: e.Error is ReductionAmongWorkersException || e.Error.InnerException is ReductionAmongWorkersException));
                break;
            case EvaluateBlocks e when FromCoordinator(e.RunId) && e.MembershipEpoch == epoch:
                // Queued on the replica's thread behind the step it follows, ahead of the next one.
                backend.EvaluateAsync(e).PipeTo(Self, success: t => new Evaluated(e, t), failure: x => new EvaluateError(e, x));
                break;
            case Evaluated d when d.Request.MembershipEpoch == epoch && coordinator is not null:
                coordinator.Tell(new BlocksEvaluated(runId, epoch, d.Request.Step, rank, d.Tally));
                break;
            case EvaluateError e when e.Request.MembershipEpoch == epoch && coordinator is not null:
                log.Error(e.Error, "worker {0} could not evaluate after step {1}", settings.WorkerId, e.Request.Step);
                coordinator.Tell(new BlocksFailed(runId, epoch, e.Request.Step, rank, e.Error.Message));
                break;
            case EmbedBlocks e when FromCoordinator(e.RunId) && e.MembershipEpoch == epoch && coordinator is not null:
            {
                // Each block goes to the coordinator as soon as it is made (from the replica's thread: Tell is thread-safe),
                // sent as this actor, which the coordinator knows as the member of this rank.
                var (to, self, run, at, r) = (coordinator, Self, runId, epoch, rank);
                backend.EmbedAsync(e, (block, bytes) => to.Tell(new BlockEmbedded(run, at, e.Step, r, block, bytes), self))
                    .PipeTo(Self, success: () => new Embedded(e), failure: x => new EmbedError(e, x));
                break;
            }
            case EmbedError e when e.Request.MembershipEpoch == epoch && coordinator is not null:
                log.Error(e.Error, "worker {0} could not embed its blocks after step {1}", settings.WorkerId, e.Request.Step);
                coordinator.Tell(new BlocksFailed(runId, epoch, e.Request.Step, rank, e.Error.Message));
                break;
            case WorkerDropped d when FromCoordinator(d.RunId):
                log.Warning("worker {0} was dropped: {1}; registering again", settings.WorkerId, d.Reason);
                Rejoin();
                break;
            case Terminated t when t.ActorRef.Equals(coordinator):
                log.Warning("worker {0} lost the coordinator; registering with its successor", settings.WorkerId);
                Rejoin();
                break;
            case RunFinished f when !FromCoordinator(f.RunId):
                Drop(f);
                break;
            case RunFailed f when !FromCoordinator(f.RunId):
                Drop(f);
                break;
            case RunFinished f:
                completion?.Succeed(new ClusterRunResult(f.GlobalStep, 0, f.RunDirectory, null, TimeSpan.Zero, 0, TimeSpan.Zero, TimeSpan.Zero));
                Context.Stop(Self);
                break;
            case RunFailed f:
                Stop(new ClusterRunException(f.Reason));
                break;
            case StepDone or StepError or Joined or JoinFailed or Prepared or PrepareFailed or Evaluated or EvaluateError or Embedded or EmbedError:
                break; // done (the blocks went out as they were made), or stale: of an earlier world or coordinator
            case StartStep or FormWorld or WorkerDropped or EvaluateBlocks or EmbedBlocks when Sender.Equals(coordinator):
                break; // stale: of an earlier world or run
            case StartStep or FormWorld or WorkerDropped or EvaluateBlocks or EmbedBlocks:
                Drop(message);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private bool FromCoordinator(Guid fromRun) => coordinator is not null && Sender.Equals(coordinator) && fromRun == runId;

    /// <summary>A message that would change this worker's state, from an actor that may not send it: ignored, and said so.</summary>
    private void Drop(object message) =>
        log.Warning("worker {0} dropped {1} from {2}: it is not from its coordinator (the singleton that accepted its registration)",
            settings.WorkerId, message.GetType().Name, Sender.Path);

    private void Rejoin()
    {
        backend.LeaveWorld();
        if (coordinator is not null) Context.Unwatch(coordinator);
        StartRegistering();
    }

    private void Stop(Exception error)
    {
        log.Error(error.Message);
        completion?.Fail(error);
        Context.Stop(Self);
    }
}
