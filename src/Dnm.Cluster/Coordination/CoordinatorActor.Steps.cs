using Akka.Actor;
using Akka.Event;
using Dnm.Cluster.Protocol;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;

namespace Dnm.Cluster.Coordination;

// Running a step. A step commits when the coordinator has the reduced statistics and hands them to its
// replica (StepReduced → CommitStepAsync). Before that point any failure abandons the step: the world is
// closed, every worker's reduction fails and it aborts, and the step is retried in a new world with shards
// recomputed for the new size. After it, the step counts whatever happens; workers that missed the
// broadcast are brought up to date by the state transfer of the next world. So no step is applied twice.
// (The backend starts the broadcast as soon as the reduction completes, before this commit; a worker that
// applied a step the actor then abandons is overwritten by the same state transfer.)
public sealed partial class CoordinatorActor
{
    private StepRound? round;
    private readonly NonFiniteSteps nonFinite = new();
    private StepTracer stepTracer = StepTracer.Untraced();
    private TrainingPhase? reportedPhase;
    private int timedSteps;
    private TimeSpan stepTime, reduceTime, transferTime;
    // Workers the step in flight is retried without, because their contribution to it held NaN or infinity; they take
    // part again from the next step. Retries of this step so far (after NonFiniteRetries the batch is skipped instead).
    private readonly HashSet<WorkerEntry> benched = new();
    private int nonFiniteRetries;

    private void BeginStep(PlannedStep p)
    {
        var w = world!;
        if (reportedPhase != p.Phase)
        {
            observer.OnPhaseStarted(p.Phase, p.Epochs, plan.StepsPerEpoch);
            reportedPhase = p.Phase;
        }
        var step = state.GlobalStep;
        var verify = settings.ChecksumEvery > 0 && (step + 1) % settings.ChecksumEvery == 0;
        // The step's span lasts over several messages, so it is not made current on this (shared) actor thread;
        // the workers' spans join it through the traceparent in StartStep.
        var trace = stepTracer.Begin(step + 1, p.Phase.Name(), makeCurrent: false);
        var start = new StartStep(runId, step, p.Phase, p.Epoch, p.StepInEpoch, p.Mode, p.Schedule.Sigma, p.Schedule.Eta,
            replica.Config.BatchSize, w.Epoch, p.DataEpoch, verify, trace.TraceParent);
        round = new StepRound(p, start, trace);
        Become(Stepping);
        foreach (var member in w.Members) member.Ref.Tell(start);
        // Only worth withholding a non-finite sum while the step may still be retried without the ranks that made it so.
        var withhold = nonFiniteRetries < settings.NonFiniteRetries;
        backend.ReduceStepAsync(w.Epoch, start, withhold, settings.AmongWorkersTimeout).PipeTo(Self, success: r => r, failure: e => new ReduceFailed(w.Epoch, step, e));
        Timers.StartSingleTimer(StepTimer, new StepTimeout(w.Epoch, step), settings.StepTimeout);
    }

    private bool IsCurrentStep(long epoch, long step) =>
        round is not null && world is not null && epoch == world.Epoch && step == round.Start.Step;

    /// <summary>A step is in flight: its reduction, commit, acknowledgements, failures and timeout.</summary>
    private void Stepping()
    {
        onMemberLost = StepMemberLost;
        Membership(onUnreachable: StepMemberUnreachable);
        Receive<StepReduced>(r => IsCurrentStep(r.MembershipEpoch, r.Step), r =>
        {
            if (r.Withheld)
            {
                RetryWithoutNonFinite(r);
                return;
            }
            round!.Reduced = true;
            round.NonFiniteRanks = r.NonFiniteRanks;
            backend.CommitStepAsync(r.MembershipEpoch, round.Start)
                .PipeTo(Self, success: a => a, failure: e => new ApplyFailed(r.MembershipEpoch, r.Step, e));
        });
        Receive<StepApplied>(a => IsCurrentStep(a.MembershipEpoch, a.Step), a =>
        {
            round!.Applied = a;
            RecordCommit(a);
            if (a.BroadcastFailedRank is { } lost && lost < world!.Size)
                Drop(world.Members[lost], $"the statistics of step {a.Step} could not be sent to it: {a.BroadcastError}");
            TryCompleteStep();
        });
        Receive<StepCompleted>(c =>
        {
            // Late (an earlier step or world), duplicate, or from a worker no longer in the world: ignored.
            if (!IsCurrentMember(c.RunId, c.MembershipEpoch, c.Rank) || !IsCurrentStep(c.MembershipEpoch, c.Step))
                log.Debug("ignored StepCompleted of step {0}, epoch {1}, rank {2}: stale or not a member", c.Step, c.MembershipEpoch, c.Rank);
            else if (round!.Lost.Contains(c.Rank) || !round.Acks.TryAdd(c.Rank, c.Checksum))
                log.Debug("ignored a duplicate StepCompleted of step {0} from rank {1}", c.Step, c.Rank);
            else
            {
                round.AddReduceTime(c.ReduceSeconds);
                TryCompleteStep();
            }
        });
        Receive<StepFailed>(f => IsCurrentMember(f.RunId, f.MembershipEpoch, f.Rank) && IsCurrentStep(f.MembershipEpoch, f.Step), f =>
        {
            // A reduction among the workers fails on every rank when one is lost: that names no one. The coordinator's own
            // connection to a lost rank fails too and names it (ReduceFailed). If it has not within the grace, the link between
            // live workers is what broke: the step is retried, and the statistics go through the coordinator.
            if (f.AmongWorkers)
            {
                log.Info("step {0}: the reduction among the workers failed on rank {1}: {2}", f.Step, f.Rank, f.Reason);
                // The first report of the step starts the grace; closing the world (any outcome of the step) cancels it.
                if (!round!.Reduced && !Timers.IsTimerActive(AmongWorkersTimer))
                    Timers.StartSingleTimer(AmongWorkersTimer, new AmongWorkersFailed(f.MembershipEpoch, f.Step, f.Rank, f.Reason), settings.AmongWorkersGrace);
            }
            else
                Drop(world!.Members[f.Rank], $"step {f.Step} failed on it: {f.Reason}");
        });
        Receive<AmongWorkersFailed>(a => IsCurrentStep(a.MembershipEpoch, a.Step) && !round!.Reduced, a =>
            ThroughTheCoordinator($"rank {a.Rank} (worker {world!.Members[a.Rank].Id}) reported: {a.Reason.TrimEnd('.')}; " +
                                  $"no worker was lost within {settings.AmongWorkersGrace.TotalSeconds:0.#}s"));
        Receive<ReduceFailed>(f => IsCurrentStep(f.MembershipEpoch, f.Step), f =>
        {
            if (f.Error is RankFailureException rf && rf.Rank < world!.Size) Drop(world.Members[rf.Rank], rf.Message);
            else if (f.Error is ReductionAmongWorkersStalledException) ThroughTheCoordinator(f.Error.Message);
            else AbortStep($"step {f.Step} failed: {f.Error.Message}", counted: true);
        });
        Receive<StepTimeout>(t => IsCurrentStep(t.MembershipEpoch, t.Step), OnStepTimeout);
        Receive<SuspendRun>(_ => SuspendWhileStepping());
        Common();
    }

    /// <summary>
    /// The reduction among the workers failed while every rank still reached the coordinator: a link between workers is down.
    /// The step is retried (the attempt counts), and the statistics go through the coordinator for as long as the world's
    /// members stay the same (<see cref="Form"/>); the result is the same bits either way.
    /// </summary>
    private void ThroughTheCoordinator(string reason)
    {
        starOnly = new StarOnly(world!.Members.ToHashSet(), $"step {round!.Start.Step}: {reason}");
        AbortStep($"{reason}; the next world sums the statistics through the coordinator", counted: true);
    }

    private void OnStepTimeout(StepTimeout t)
    {
        var r = round!;
        var w = world!;
        var timeout = $"{settings.StepTimeout.TotalSeconds:0.#}s";
        if (r.Applied is not null)
        {
            // Committed: the step counts. The next world re-sends the full state to whoever lagged.
            var silent = Enumerable.Range(0, w.Size).Where(k => !r.Lost.Contains(k) && !r.Acks.ContainsKey(k));
            observer.OnMessage($"step {t.Step}: no acknowledgement from {Ranks(silent)} within {timeout}; re-forming after it");
            membershipChanged = true;
            CompleteStep();
        }
        else if (r.Reduced)
        {
            // The replica is applying (no network involved): wait for it.
            Timers.StartSingleTimer(StepTimer, t, settings.StepTimeout);
        }
        else
        {
            // Before the commit the step waits for contributions: the ranks whose contribution to the gather in flight has
            // not arrived are the late ones. Some late, not all: stragglers, evicted; the step is retried at once by the
            // rest (a new world, the same global batch divided among fewer ranks). All late: the fault may well be ours.
            var arrivals = backend.Arrivals(w.Epoch);
            var late = arrivals is null ? [] : Enumerable.Range(0, w.Size).Where(k => arrivals[k] is null).ToArray();
            if (late.Length > 0 && late.Length < w.Size)
            {
                var onTime = arrivals!.Where(a => a is not null).Max()!.Value;
                var reason = $"a straggler: its contribution to step {t.Step} had not arrived after {timeout}, the other ranks' within {onTime.TotalSeconds:0.###}s";
                var who = Ranks(late);
                foreach (var rank in late)
                {
                    Evict(w.Members[rank], reason);
                    metrics?.RecordMembershipChange();
                    metrics?.RecordExcludedRank(ExclusionReason.Straggler);
                }
                membershipChanged = true;
                AbortStep($"{who} sent nothing within {timeout} (evicted as a straggler); the other ranks take its share", counted: false);
            }
            else
            {
                var who = late.Length > 0 ? Ranks(late) : "the coordinator's broadcast (every rank's contribution had arrived)";
                AbortStep($"step {t.Step} timed out after {timeout} waiting for {who}", counted: true);
            }
        }
    }

    /// <summary>
    /// Some ranks' contributions held NaN or infinity, and the backend withheld the sum: nothing was applied anywhere. The
    /// step is retried at once in a world without those ranks (the others recompute their micro-batches, so the step's
    /// result is what it would have been without the fault); they are back from the next step on.
    /// </summary>
    private void RetryWithoutNonFinite(StepReduced r)
    {
        var w = world!;
        var ranks = r.NonFiniteRanks!.Where(k => k < w.Size).ToArray();
        nonFiniteRetries++;
        foreach (var rank in ranks)
        {
            benched.Add(w.Members[rank]);
            metrics?.RecordExcludedRank(ExclusionReason.NonFinite);
        }
        AbortStep($"the contribution of {Ranks(ranks)} held NaN or infinity, so the step is computed again without it " +
                  $"(retry {nonFiniteRetries} of {settings.NonFiniteRetries}; then the batch is skipped)", counted: false);
    }

    /// <summary>
    /// One line in the commit log (<see cref="CoordinatorSettings.CommitLog"/>), if asked for: the replica applied this step.
    /// Appended whole, on the actor's thread, before the next step can begin.
    /// </summary>
    private void RecordCommit(StepApplied a)
    {
        if (settings.CommitLog is not { } path) return;
        File.AppendAllText(path, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"step={a.Step + 1} epoch={a.MembershipEpoch} world={world!.Size} adam={a.AdamSteps}\n"));
    }

    /// <summary>"rank 1 (worker host:port/w0), rank 2 (worker …)" in the current world.</summary>
    private string Ranks(IEnumerable<int> ranks) => string.Join(", ", ranks.Select(k => $"rank {k} (worker {world!.Members[k].Id})"));

    /// <summary>A member of the world left mid-step: abandon the step before its commit, or stop waiting for it after.</summary>
    private void StepMemberLost(int rank, string reason)
    {
        if (round is null) return;
        if (!round.Reduced)
        {
            AbortStep(reason, counted: false);
            return;
        }
        round.Lost.Add(rank);
        TryCompleteStep();
    }

    /// <summary>
    /// A member of the world is unreachable mid-step. After the commit its acknowledgement is no longer awaited
    /// (<see cref="TryCompleteStep"/>). Before it, a contribution that has not arrived will not come from a dead node (a
    /// killed machine closes no socket): the step is retried at once without it. One that has arrived lets the step go on.
    /// </summary>
    private void StepMemberUnreachable(int rank)
    {
        if (round is null) return;
        if (round.Reduced)
        {
            TryCompleteStep();
            return;
        }
        var arrivals = backend.Arrivals(world!.Epoch);
        if (arrivals is not null && rank < arrivals.Length && arrivals[rank] is not null) return;
        AbortStep($"worker {world.Members[rank].Id} (rank {rank}) is unreachable and its contribution to step {round.Start.Step} has not arrived", counted: false);
    }

    private void AbortStep(string reason, bool counted)
    {
        metrics?.RecordRetriedStep();
        observer.OnMessage($"step {round?.Start.Step} abandoned: {reason}; retrying it");
        // Closing the world makes every worker's reduction fail, and each aborts its step.
        CloseWorld();
        if (counted) Retry(reason);
        else Form();
    }

    private void TryCompleteStep()
    {
        if (round?.Applied is null || world is null) return;
        // Nothing more is awaited from a rank that left, or whose node is unreachable: the next world brings it up to date.
        for (var rank = 0; rank < world.Size; rank++)
            if (!round.Lost.Contains(rank) && !round.Acks.ContainsKey(rank) && !unreachable.Contains(world.Members[rank].Node)) return;
        CompleteStep();
    }

    private void CompleteStep()
    {
        var r = round!;
        var applied = r.Applied!;
        Timers.Cancel(StepTimer);
        if (applied.Checksum is { } expected)
        {
            foreach (var (rank, checksum) in r.Acks)
            {
                if (checksum is not { } got || got == expected) continue;
                Fail($"replica checksum mismatch after step {r.Start.Step}: rank {rank} (worker {world!.Members[rank].Id}) has 0x{got:X16}, " +
                     $"the coordinator 0x{expected:X16}; the replicas diverged");
                return;
            }
        }
        nonFiniteRetries = 0;
        if (benched.Count > 0)
        {
            // The workers left out of this step take part again from the next one.
            benched.Clear();
            membershipChanged = true;
        }
        var elapsed = r.Clock.Elapsed;
        timedSteps++;
        worldSteps++;
        stepTime += elapsed;
        reduceTime += r.ReduceTime;
        transferTime += applied.Transfer;
        var (next, checkpoint, evaluate) = plan.AfterStep(state);
        state = next;
        adamSteps = applied.AdamSteps;
        attempts = 0;
        round = null;
        var p = r.Plan;
        // Reported inside the step's span, so log lines written for it carry its trace id (as the Trainer's do).
        using (r.Trace.Enter())
            observer.OnStep(plan.Report(p, state.GlobalStep, applied.Loss, elapsed));
        r.Trace.Dispose();
        // Every replica skipped a step whose sums held NaN or infinity; the coordinator names whose blocks did.
        var culprits = r.NonFiniteRanks is { Count: > 0 } bad
            ? string.Join(", ", bad.Where(k => k < world!.Size).Select(k => $"rank {k} (worker {world!.Members[k].Id})"))
            : null;
        if (nonFinite.Record(state.GlobalStep, applied.Loss, culprits) is { } skipped)
        {
            if (nonFinite.Failed)
            {
                Fail(skipped);
                return;
            }
            observer.OnMessage(skipped);
        }
        if (checkpoints.Due(state, checkpoint))
        {
            checkpoints.Saved(state);
            // Queued on the replica's thread before the next step's apply, so it sees exactly this state.
            var saved = state;
            backend.SaveCheckpointAsync(saved).PipeTo(Self, success: c => (object?)c ?? new CheckpointSkipped(saved.GlobalStep),
                failure: e => new CheckpointFailed(saved.GlobalStep, e));
        }
        // The workers tally it before the next step (Advance holds the run for it), as the Trainer evaluates before its next step.
        if (evaluate) RequestEvaluation(final: false, state.Epoch);
        Advance();
    }
}
