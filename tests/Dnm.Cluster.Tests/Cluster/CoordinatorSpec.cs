using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Tests.Support;
using Dnm.Core.Evaluation;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>The coordinator's step state machine, with TestProbes as workers and a scripted backend.</summary>
public sealed class CoordinatorSpec(ITestOutputHelper output) : TestKit(output: output)
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    private (IActorRef Coordinator, RunCompletion Completion) Start(ScriptedBackend backend, CoordinatorSettings settings,
        Hosting.ClusterTelemetry? telemetry = null)
    {
        var completion = new RunCompletion();
        return (Sys.ActorOf(CoordinatorActor.Props(settings, () => backend, new NoObserver(), completion, telemetry)), completion);
    }

    /// <summary>Registers a probe as a worker and reports it ready.</summary>
    private TestProbe Worker(IActorRef coordinator, string id, int statsLength = ScriptedBackend.StatsLength, string? version = null)
    {
        var probe = CreateTestProbe(id);
        probe.Send(coordinator, new RegisterWorker(id, ClusterProtocol.Version, version ?? ClusterProtocol.DnmVersion, "cpu", Guid.NewGuid()));
        if (version is not null) return probe;
        var accepted = probe.ExpectMsg<RegistrationAccepted>();
        probe.Send(coordinator, new WorkerReady(accepted.RunId, id, 8, ScriptedBackend.Shape, statsLength));
        return probe;
    }

    private static FormWorld Join(TestProbe worker, IActorRef coordinator, ulong checksum = ScriptedBackend.ReplicaChecksum)
    {
        var world = worker.ExpectMsg<FormWorld>();
        worker.Send(coordinator, new WorldJoined(world.RunId, world.MembershipEpoch, world.Rank, checksum));
        return world;
    }

    private static void Ack(TestProbe worker, IActorRef coordinator, StartStep step, int rank, ulong? checksum = null) =>
        worker.Send(coordinator, new StepCompleted(step.RunId, step.MembershipEpoch, step.Step, rank, checksum, 0));

    /// <summary>
    /// Answers the worker's evaluation request with a tally of exactly its blocks: every sample on node <paramref name="node"/>,
    /// labelled 0, its second BMU a neighbour, at distance 1; returns the request.
    /// </summary>
    private static EvaluateBlocks Evaluate(TestProbe worker, IActorRef coordinator, int rank, int node = 0, EvaluateBlocks? received = null)
    {
        var request = received ?? worker.ExpectMsg<EvaluateBlocks>();
        var tally = new EvaluationTally(request.Plan, nodes: 4, classes: 1);
        foreach (var b in request.Blocks)
        {
            var (reference, _, n) = request.Plan[b];
            var bmu = Enumerable.Repeat(node, n).ToArray();
            if (reference) tally.AddReference(b, bmu, new int[n]);
            else tally.AddEvaluated(b, bmu, Enumerable.Repeat(node ^ 1, n).ToArray(), Enumerable.Repeat(1f, n).ToArray(), new int[n], 0, (_, _) => true);
        }
        worker.Send(coordinator, new BlocksEvaluated(request.RunId, request.MembershipEpoch, request.Step, rank, tally.ToBytes()));
        return request;
    }

    [Fact]
    public async Task Should_run_every_step_and_announce_the_end_to_its_workers()
    {
        var (coordinator, completion) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        Join(worker, coordinator);
        // 1 pre-training epoch and 1 joint epoch of 2 steps; SOM pre-training in between re-forms the world.
        for (var step = 0; step < 4; step++)
        {
            if (step == 2) Join(worker, coordinator);
            var start = worker.ExpectMsg<StartStep>();
            Assert.Equal(step, start.Step);
            Assert.Equal(step < 2 ? Core.Training.StepMode.Autoencoder : Core.Training.StepMode.Joint, start.Mode);
            Ack(worker, coordinator, start, 0);
        }
        // The final evaluation: the one worker tallies every block, and the run ends with the merged quality.
        var request = Evaluate(worker, coordinator, 0);
        Assert.Equal(ScriptedBackend.FinalEvaluation, request.Plan);
        Assert.Equal([0, 1, 2, 3], request.Blocks);
        worker.ExpectMsg<RunFinished>(f => f.GlobalStep == 4);
        Assert.Equal(4, (await completion.Task.WaitAsync(TimeSpan.FromSeconds(5))).GlobalSteps);
    }

    [Theory]
    [InlineData(0, 0, 0)]        // no smoothing: no world announces targets
    [InlineData(0, 4800, 4800)]  // ẑ made before SOM pre-training: the joint phase's world sends it
    [InlineData(4800, 4800, 4800)] // resumed from a checkpoint that holds ẑ: every world sends it
    public void Should_announce_the_replicas_smoothed_targets_to_every_world_that_has_them(int atStart, int afterSom, int joint)
    {
        var (coordinator, _) = Start(new ScriptedBackend { TargetsAtStart = atStart, TargetsAfterSom = afterSom }, new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        Assert.Equal(atStart, Join(worker, coordinator).TargetsLength);
        for (var step = 0; step < 2; step++) Ack(worker, coordinator, worker.ExpectMsg<StartStep>(), 0);
        // SOM pre-training re-forms the world; the workers' joint steps need ẑ from it on.
        Assert.Equal(joint, Join(worker, coordinator).TargetsLength);
    }

    [Fact]
    public async Task Should_fail_the_run_naming_the_replicas_failed_operation_and_ignore_step_replies_while_no_step_runs()
    {
        var (coordinator, completion) = Start(new ScriptedBackend { SomFailure = "out of memory" }, new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        var world = Join(worker, coordinator);
        StartStep last = null!;
        for (var step = 0; step < 2; step++) Ack(worker, coordinator, last = worker.ExpectMsg<StartStep>(), 0);
        // SOM pre-training is in flight: a repeated acknowledgement is not a step of this state, and changes nothing.
        Ack(worker, coordinator, last, 0);
        var failed = worker.ExpectMsg<RunFailed>();
        Assert.Equal("the coordinator's replica failed (SOM pre-training): out of memory", failed.Reason);
        var error = await Assert.ThrowsAsync<ClusterRunException>(() => completion.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Contains("SOM pre-training", error.Message);
        Assert.Equal(world.RunId, failed.RunId);
    }

    [Fact]
    public async Task Should_take_step_and_membership_replies_only_from_the_registered_worker_of_that_rank()
    {
        var (coordinator, completion) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        var world = Join(worker, coordinator);
        var rogue = CreateTestProbe("rogue");
        var first = worker.ExpectMsg<StartStep>();
        // Rank 0's replies, right run, epoch and step, from an actor that never registered: none may drop or ack the worker.
        rogue.Send(coordinator, new StepFailed(first.RunId, first.MembershipEpoch, first.Step, 0, "rogue"));
        rogue.Send(coordinator, new WorkerFailed(first.RunId, "w0", "rogue"));
        rogue.Send(coordinator, new WorldJoinFailed(world.RunId, world.MembershipEpoch, 0, "rogue"));
        Ack(rogue, coordinator, first, 0);
        worker.ExpectNoMsg(Quiet); // no WorkerDropped, and step 0 is not completed by the rogue's ack
        Ack(worker, coordinator, first, 0);
        Ack(worker, coordinator, worker.ExpectMsg<StartStep>(s => s.Step == 1), 0);
        Join(worker, coordinator);
        for (var step = 2; step < 4; step++) Ack(worker, coordinator, worker.ExpectMsg<StartStep>(), 0);
        var request = worker.ExpectMsg<EvaluateBlocks>();
        // A tally of rank 0's blocks from an actor that is not rank 0: ignored.
        var forged = new EvaluationTally(request.Plan, 4, 1);
        rogue.Send(coordinator, new BlocksEvaluated(request.RunId, request.MembershipEpoch, request.Step, 0, forged.ToBytes()));
        rogue.Send(coordinator, new BlocksFailed(request.RunId, request.MembershipEpoch, request.Step, 0, "rogue"));
        worker.ExpectNoMsg(Quiet);
        Evaluate(worker, coordinator, 0, received: request);
        worker.ExpectMsg<RunFinished>();
        Assert.Equal(4, (await completion.Task.WaitAsync(TimeSpan.FromSeconds(5))).GlobalSteps);
        rogue.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // the run's end is announced to registered workers only
    }

    [Fact]
    public async Task Should_abandon_an_uncommitted_step_checkpoint_the_last_complete_one_and_stop_when_asked_to()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, completion) = Start(backend, new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        Join(worker, coordinator);
        var first = worker.ExpectMsg<StartStep>();
        backend.Release(first.MembershipEpoch, 0);
        Ack(worker, coordinator, first, 0);
        var second = worker.ExpectMsg<StartStep>(s => s.Step == 1);
        // Step 1 has not reached its commit point: SIGTERM abandons it, and the run stops at step 1 (one step done).
        coordinator.Tell(SuspendRun.Instance);
        var stop = await Assert.ThrowsAsync<Core.Training.RunStoppedException>(() => completion.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(1, stop.GlobalStep);
        Assert.Equal("step-1.ckpt", stop.Checkpoint);
        Assert.Equal(1, Assert.Single(backend.Saved).GlobalStep);
        Assert.Equal([0L], backend.Committed);
        // The workers are not told the run ended: they see their coordinator leave, and rejoin it when it is back.
        backend.Release(second.MembershipEpoch, 1);
        worker.ExpectNoMsg(Quiet);
        Assert.Equal([0L], backend.Committed);
    }

    [Fact]
    public async Task Should_complete_a_committed_step_before_it_stops_when_asked_to()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, completion) = Start(backend, new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        Join(worker, coordinator);
        var first = worker.ExpectMsg<StartStep>();
        backend.Release(first.MembershipEpoch, 0);
        AwaitCondition(() => backend.Committed.Count == 1, TimeSpan.FromSeconds(3));
        // Step 0 has committed (the replica applied it): the stop waits for it, then checkpoints step 1 and starts no other.
        coordinator.Tell(SuspendRun.Instance);
        Ack(worker, coordinator, first, 0);
        var stop = await Assert.ThrowsAsync<Core.Training.RunStoppedException>(() => completion.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(1, stop.GlobalStep);
        Assert.Equal(1, Assert.Single(backend.Saved).GlobalStep);
        worker.ExpectNoMsg(Quiet);
    }

    [Fact]
    public void Should_ignore_a_late_reply_for_an_earlier_step()
    {
        var (coordinator, _) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var worker = Worker(coordinator, "w0");
        Join(worker, coordinator);
        var first = worker.ExpectMsg<StartStep>();
        Ack(worker, coordinator, first, 0);
        var second = worker.ExpectMsg<StartStep>(s => s.Step == 1);
        // The same acknowledgement again, arriving during step 1: it must not complete step 1.
        Ack(worker, coordinator, first, 0);
        worker.ExpectNoMsg(Quiet);
        Ack(worker, coordinator, second, 0);
        Assert.Equal(2, worker.ExpectMsg<FormWorld>().MembershipEpoch); // after SOM pre-training
    }

    [Fact]
    public void Should_count_a_duplicate_reply_once()
    {
        var (coordinator, _) = Start(new ScriptedBackend(), new CoordinatorSettings { MinWorkers = 2 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        var rankA = Join(a, coordinator).Rank;
        var rankB = Join(b, coordinator).Rank;
        var start = a.ExpectMsg<StartStep>();
        b.ExpectMsg<StartStep>();
        Ack(a, coordinator, start, rankA);
        Ack(a, coordinator, start, rankA);
        a.ExpectNoMsg(Quiet);
        Ack(b, coordinator, start, rankB);
        a.ExpectMsg<StartStep>(s => s.Step == 1);
    }

    [Fact]
    public void Should_ignore_a_reply_from_a_removed_member_and_retry_the_step_without_it()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        var worldA = Join(a, coordinator);
        var worldB = Join(b, coordinator);
        var start = a.ExpectMsg<StartStep>();
        b.ExpectMsg<StartStep>();
        // b's step fails before the reduction completes: b is dropped and the step is retried without it.
        b.Send(coordinator, new StepFailed(start.RunId, start.MembershipEpoch, start.Step, worldB.Rank, "boom"));
        b.ExpectMsg<WorkerDropped>();
        var retried = Join(a, coordinator);
        Assert.Equal(1, retried.WorldSize);
        Assert.True(retried.MembershipEpoch > worldA.MembershipEpoch);
        // A reply from the removed member (for the abandoned world) changes nothing.
        Ack(b, coordinator, start, worldB.Rank);
        var again = a.ExpectMsg<StartStep>();
        Assert.Equal(start.Step, again.Step);
        Assert.Equal(retried.MembershipEpoch, again.MembershipEpoch);
        // The abandoned world's reduction finishing late must not commit anything either.
        backend.Release(start.MembershipEpoch, start.Step);
        a.ExpectNoMsg(Quiet);
        Assert.Empty(backend.Committed);
        backend.Release(again.MembershipEpoch, again.Step);
        Ack(a, coordinator, again, 0);
        a.ExpectMsg<StartStep>(s => s.Step == 1);
        Assert.Equal([0L], backend.Committed.ToArray());
    }

    [Fact]
    public void Should_retry_the_step_with_the_remaining_workers_when_one_stops()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        Join(a, coordinator);
        Join(b, coordinator);
        var start = a.ExpectMsg<StartStep>();
        Sys.Stop(b.Ref); // Terminated, as when its node is removed from the cluster
        var retried = Join(a, coordinator);
        Assert.Equal((0, 1), (retried.Rank, retried.WorldSize));
        Assert.Equal(start.Step, a.ExpectMsg<StartStep>().Step);
    }

    [Fact]
    public void Should_count_joins_and_losses_as_membership_changes_and_the_abandoned_step_as_retried()
    {
        using var recorded = new MetricsRecorder();
        using var metrics = new Core.Telemetry.DnmMetrics(new Core.Telemetry.TelemetryIdentity("coordinator", 0, "cpu"), scope: recorded);
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2 }, new Hosting.ClusterTelemetry(metrics, null, null));
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        Join(a, coordinator);
        Join(b, coordinator);
        a.ExpectMsg<StartStep>();
        Assert.Equal(2, recorded.Sum("dnm_cluster_membership_changes_total", "coordinator", "0"));
        Assert.Equal(2, recorded.Last("dnm_cluster_workers", "coordinator", "0"));
        Assert.Equal(0, recorded.Sum("dnm_train_retried_steps_total", "coordinator", "0"));
        Sys.Stop(b.Ref);
        Join(a, coordinator);
        a.ExpectMsg<StartStep>();
        Assert.Equal(3, recorded.Sum("dnm_cluster_membership_changes_total", "coordinator", "0"));
        Assert.Equal(1, recorded.Sum("dnm_train_retried_steps_total", "coordinator", "0"));
        Assert.Equal(1, recorded.Last("dnm_cluster_workers", "coordinator", "0"));
    }

    [Fact]
    public void Should_abandon_and_retry_a_step_that_times_out()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, _) = Start(backend, new CoordinatorSettings { StepTimeout = TimeSpan.FromMilliseconds(400) });
        var worker = Worker(coordinator, "w0");
        var first = Join(worker, coordinator);
        var start = worker.ExpectMsg<StartStep>();
        // Nothing happens: no reduction, no acknowledgement. The world is closed and formed again.
        var second = Join(worker, coordinator);
        Assert.True(second.MembershipEpoch > first.MembershipEpoch);
        Assert.True(backend.WorldsClosed >= 1);
        var retry = worker.ExpectMsg<StartStep>();
        Assert.Equal((start.Step, second.MembershipEpoch), (retry.Step, retry.MembershipEpoch));
    }

    [Fact]
    public async Task Should_fail_the_run_after_too_many_timeouts_in_a_row()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, completion) = Start(backend, new CoordinatorSettings { StepTimeout = TimeSpan.FromMilliseconds(200), MaxAttempts = 2 });
        var worker = Worker(coordinator, "w0");
        Join(worker, coordinator);
        worker.ExpectMsg<StartStep>();
        Join(worker, coordinator);
        worker.ExpectMsg<StartStep>();
        var failed = worker.ExpectMsg<RunFailed>();
        Assert.Contains("timed out", failed.Reason);
        Assert.Contains("rank 0 (worker w0)", failed.Reason);
        await Assert.ThrowsAsync<ClusterRunException>(() => completion.Task.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Should_evict_only_the_rank_whose_contribution_had_not_arrived_at_the_timeout_and_retry_without_it()
    {
        // Rank 0's contribution arrived after 10 ms, rank 1's never: rank 1 is the straggler.
        var backend = new ScriptedBackend { HoldReductions = true, ArrivalsOf = n => n == 2 ? [TimeSpan.FromMilliseconds(10), null] : new TimeSpan?[n] };
        var (coordinator, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2, StepTimeout = TimeSpan.FromMilliseconds(400), MaxAttempts = 1 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        var worldA = Join(a, coordinator);
        Join(b, coordinator);
        var start = a.ExpectMsg<StartStep>();
        var (fast, slow) = worldA.Rank == 0 ? (a, b) : (b, a);
        var dropped = slow.FishForMessage<WorkerDropped>(_ => true);
        Assert.StartsWith($"a straggler: its contribution to step {start.Step} had not arrived after 0.4s", dropped.Reason);
        // A new world of the fast worker alone retries the same step; with MaxAttempts 1, a counted failure would have failed the run.
        var retried = Join(fast, coordinator);
        Assert.Equal(1, retried.WorldSize);
        var again = fast.ExpectMsg<StartStep>();
        Assert.Equal((start.Step, retried.MembershipEpoch), (again.Step, again.MembershipEpoch));
        backend.Release(again.MembershipEpoch, again.Step);
        Ack(fast, coordinator, again, 0);
        fast.ExpectMsg<StartStep>(s => s.Step == start.Step + 1);
        Assert.Equal([start.Step], backend.Committed.ToArray());
    }

    [Fact]
    public void Should_count_a_timeout_where_every_rank_is_late_as_a_failed_attempt_naming_them()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        var (coordinator, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2, StepTimeout = TimeSpan.FromMilliseconds(300), MaxAttempts = 1 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        Join(a, coordinator);
        Join(b, coordinator);
        a.ExpectMsg<StartStep>();
        var failed = a.FishForMessage<RunFailed>(_ => true);
        Assert.Contains("timed out", failed.Reason);
        Assert.Contains("(worker a)", failed.Reason);
        Assert.Contains("(worker b)", failed.Reason);
    }

    [Fact]
    public void Should_retry_a_step_without_the_ranks_whose_contribution_was_non_finite_and_take_them_back_after_it()
    {
        var backend = new ScriptedBackend { HoldReductions = true };
        using var recorded = new MetricsRecorder();
        using var metrics = new Core.Telemetry.DnmMetrics(new Core.Telemetry.TelemetryIdentity("coordinator", 0, "cpu"), scope: recorded);
        var (coordinator, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2, NonFiniteRetries = 1 }, new Hosting.ClusterTelemetry(metrics, null, null));
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        var worldA = Join(a, coordinator);
        Join(b, coordinator);
        var start = a.ExpectMsg<StartStep>();
        b.ExpectMsg<StartStep>();
        var (good, bad) = worldA.Rank == 0 ? (a, b) : (b, a);
        backend.Withhold(start.MembershipEpoch, start.Step, 1);
        // The retry's world holds the good worker alone; the bad one is still registered, but sits this step out.
        var retried = Join(good, coordinator);
        Assert.Equal(1, retried.WorldSize);
        bad.ExpectNoMsg(Quiet);
        var again = good.ExpectMsg<StartStep>();
        Assert.Equal(start.Step, again.Step);
        // Retries used up: the next non-finite sum is broadcast and skipped, not withheld.
        Assert.Equal([true, false], backend.Withholding.ToArray());
        backend.Release(again.MembershipEpoch, again.Step);
        Ack(good, coordinator, again, 0);
        // The next step's world has both again.
        var next = Join(good, coordinator);
        Join(bad, coordinator);
        Assert.Equal(2, next.WorldSize);
        Assert.Equal(start.Step + 1, good.ExpectMsg<StartStep>().Step);
        Assert.Equal(1, recorded.Sum("dnm_cluster_excluded_ranks_total", "coordinator", "0"));
        Assert.Equal([start.Step], backend.Committed.ToArray());
    }

    [Fact]
    public async Task Should_fail_naming_the_rank_whose_checksum_differs()
    {
        var (coordinator, completion) = Start(new ScriptedBackend(), new CoordinatorSettings { ChecksumEvery = 1, MinWorkers = 2 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        Join(a, coordinator);
        var rankB = Join(b, coordinator).Rank;
        var start = a.ExpectMsg<StartStep>();
        Assert.True(start.VerifyChecksum);
        Ack(a, coordinator, start, 1 - rankB, ScriptedBackend.ReplicaChecksum);
        Ack(b, coordinator, start, rankB, 7);
        var failed = a.ExpectMsg<RunFailed>();
        Assert.Contains($"rank {rankB} (worker b)", failed.Reason);
        var error = await Assert.ThrowsAsync<ClusterRunException>(() => completion.Task.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Contains("checksum mismatch", error.Message);
    }

    [Fact]
    public void Should_reject_a_worker_whose_dataset_digest_differs_naming_both_digests_and_sources()
    {
        var ours = new Core.Data.DatasetDigest(new string('a', 64), "idx:/data/images.idx train: 1 file(s), 1,000 bytes");
        var (coordinator, _) = Start(new ScriptedBackend { Dataset = ours }, new CoordinatorSettings());
        var same = CreateTestProbe("same");
        var other = CreateTestProbe("other");
        foreach (var (probe, digest) in new[] { (same, ours), (other, new Core.Data.DatasetDigest(new string('b', 64), "idx:/mnt/images.idx train: 1 file(s), 999 bytes")) })
        {
            probe.Send(coordinator, new RegisterWorker(probe.Ref.Path.Name, ClusterProtocol.Version, ClusterProtocol.DnmVersion, "cpu", Guid.NewGuid()));
            var accepted = probe.ExpectMsg<RegistrationAccepted>();
            probe.Send(coordinator, new WorkerReady(accepted.RunId, probe.Ref.Path.Name, 8, ScriptedBackend.Shape, ScriptedBackend.StatsLength, digest));
        }
        var rejected = other.ExpectMsg<RegistrationRejected>().Reason;
        Assert.Equal("worker other reads a different dataset: digest bbbbbbbbbbbbbbbb of idx:/mnt/images.idx train: 1 file(s), 999 bytes, but the coordinator's " +
                     "is aaaaaaaaaaaaaaaa of idx:/data/images.idx train: 1 file(s), 1,000 bytes; every node must read the same files " +
                     "(compare them, e.g. with sha256sum, and copy the coordinator's)", rejected);
        // The worker with the same files forms the world.
        same.ExpectMsg<FormWorld>();
    }

    [Fact]
    public void Should_reject_a_worker_of_another_version_or_model_shape()
    {
        var (coordinator, _) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var old = Worker(coordinator, "old", version: "0.0.1-old");
        Assert.Contains("0.0.1-old", old.ExpectMsg<RegistrationRejected>().Reason);
        var other = Worker(coordinator, "other", statsLength: 11);
        Assert.Contains("different model shape", other.ExpectMsg<RegistrationRejected>().Reason);
    }
    /// <summary>Two workers through the whole run up to the final evaluation's requests (one each).</summary>
    private (IActorRef Coordinator, RunCompletion Completion, TestProbe A, TestProbe B, FormWorld WorldA, FormWorld WorldB) TwoWorkersToTheEnd()
    {
        var (coordinator, completion) = Start(new ScriptedBackend(), new CoordinatorSettings { MinWorkers = 2 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        var (worldA, worldB) = (Join(a, coordinator), Join(b, coordinator));
        for (var step = 0; step < 4; step++)
        {
            if (step == 2) (worldA, worldB) = (Join(a, coordinator), Join(b, coordinator));
            var start = a.ExpectMsg<StartStep>();
            b.ExpectMsg<StartStep>();
            Ack(a, coordinator, start, worldA.Rank);
            Ack(b, coordinator, start, worldB.Rank);
        }
        return (coordinator, completion, a, b, worldA, worldB);
    }

    [Fact]
    public async Task Should_split_the_final_evaluation_among_the_workers_and_finish_with_their_merged_tally()
    {
        var (coordinator, completion, a, b, worldA, worldB) = TwoWorkersToTheEnd();
        // Every other block to each rank; rank 0 puts its samples on node 0, rank 1 on node 3.
        var requestA = Evaluate(a, coordinator, worldA.Rank, node: 0);
        var requestB = Evaluate(b, coordinator, worldB.Rank, node: 3);
        Assert.Equal([0, 1, 2, 3], requestA.Blocks.Concat(requestB.Blocks).Order());
        Assert.Equal([worldA.Rank, 2 + worldA.Rank], requestA.Blocks);
        a.ExpectMsg<RunFinished>();
        var result = await completion.Task.WaitAsync(TimeSpan.FromSeconds(5));
        // Node 0 and node 3 each hold one reference block labelled 0, so both are labelled 0: every evaluated sample is pure.
        Assert.Equal(1.0, result.Final!.Purity);
        Assert.Equal(1.0, result.Final.Qe);
        Assert.Equal(0.0, result.Final.Te);
    }

    [Fact]
    public async Task Should_give_a_lost_workers_evaluation_blocks_to_the_next_world()
    {
        var (coordinator, completion, a, b, worldA, _) = TwoWorkersToTheEnd();
        var requestA = Evaluate(a, coordinator, worldA.Rank);
        b.ExpectMsg<EvaluateBlocks>();
        Sys.Stop(b.Ref); // b dies before it answers
        // The next world holds a alone, with the state transfer of the same step, and asks it for b's blocks only.
        var alone = Join(a, coordinator);
        Assert.Equal(1, alone.WorldSize);
        var missing = Evaluate(a, coordinator, 0);
        Assert.Equal(new[] { 0, 1, 2, 3 }.Except(requestA.Blocks), missing.Blocks);
        Assert.Equal(requestA.Step, missing.Step);
        a.ExpectMsg<RunFinished>();
        Assert.Equal(1.0, (await completion.Task.WaitAsync(TimeSpan.FromSeconds(5))).Final!.Purity);
    }

    [Fact]
    public void Should_drop_a_worker_whose_tally_holds_other_blocks_and_fail_on_a_worker_that_cannot_evaluate()
    {
        var (coordinator, _, a, b, worldA, _) = TwoWorkersToTheEnd();
        var requestA = a.ExpectMsg<EvaluateBlocks>();
        var requestB = b.ExpectMsg<EvaluateBlocks>();
        // a answers with a tally of b's blocks: unusable, so a is dropped and its blocks go to the next world.
        var wrong = new EvaluationTally(requestA.Plan, 4, 1);
        foreach (var block in requestB.Blocks)
        {
            var (reference, _, n) = requestA.Plan[block];
            if (reference) wrong.AddReference(block, new int[n], new int[n]);
            else wrong.AddEvaluated(block, new int[n], Enumerable.Repeat(1, n).ToArray(), new float[n], new int[n], 0, (_, _) => true);
        }
        a.Send(coordinator, new BlocksEvaluated(requestA.RunId, requestA.MembershipEpoch, requestA.Step, worldA.Rank, wrong.ToBytes()));
        Assert.Contains("tallied other blocks", a.ExpectMsg<WorkerDropped>().Reason);
        // The next world is b alone, asked for every block (none was merged).
        var alone = Join(b, coordinator);
        var again = b.ExpectMsg<EvaluateBlocks>();
        Assert.Equal([0, 1, 2, 3], again.Blocks);
        // b cannot read its evaluation data: that is the run's data problem, not b's, and the run fails naming it.
        b.Send(coordinator, new BlocksFailed(again.RunId, again.MembershipEpoch, again.Step, alone.Rank, "no such file: test-images"));
        var failed = b.ExpectMsg<RunFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("worker b", failed.Reason);
        Assert.Contains("no such file: test-images", failed.Reason);
    }

    private static readonly Core.Training.EmbeddingBlocks SomPlan = new(Samples: 8, Dim: 2, BlockSize: 3);

    /// <summary>Sample i's embedding in the embedding specs: (i, -i).</summary>
    private static float[] Rows(int start, int count) => Enumerable.Range(start, count).SelectMany(i => new[] { (float)i, -i }).ToArray();

    /// <summary>Answers the worker's embedding request (or <paramref name="received"/>) with blocks <paramref name="only"/> of it (all by default).</summary>
    private static EmbedBlocks Embed(TestProbe worker, IActorRef coordinator, int rank, EmbedBlocks? received = null, int[]? only = null)
    {
        var request = received ?? worker.ExpectMsg<EmbedBlocks>();
        foreach (var block in only ?? request.Blocks)
        {
            var (start, n) = request.Plan[block];
            worker.Send(coordinator, new BlockEmbedded(request.RunId, request.MembershipEpoch, request.Step, rank, block, Core.Training.EmbeddingGather.Encode(Rows(start, n))));
        }
        return request;
    }

    /// <summary>Two workers through autoencoder pre-training (steps 0 and 1), the embedding requests not yet read.</summary>
    private (IActorRef Coordinator, RunCompletion Completion, ScriptedBackend Backend, TestProbe A, TestProbe B, FormWorld WorldA, FormWorld WorldB) TwoWorkersToSomPretraining()
    {
        var backend = new ScriptedBackend { SomEmbedding = SomPlan };
        var (coordinator, completion) = Start(backend, new CoordinatorSettings { MinWorkers = 2 });
        var a = Worker(coordinator, "a");
        var b = Worker(coordinator, "b");
        var (worldA, worldB) = (Join(a, coordinator), Join(b, coordinator));
        for (var step = 0; step < 2; step++)
        {
            var start = a.ExpectMsg<StartStep>();
            b.ExpectMsg<StartStep>();
            Ack(a, coordinator, start, worldA.Rank);
            Ack(b, coordinator, start, worldB.Rank);
        }
        return (coordinator, completion, backend, a, b, worldA, worldB);
    }

    [Fact]
    public void Should_have_the_workers_embed_som_pretrainings_samples_and_fit_the_map_on_them_assembled()
    {
        var (coordinator, _, backend, a, b, worldA, worldB) = TwoWorkersToSomPretraining();
        // Every other block to each rank of the world that ran the last step, held at that step.
        var requestA = Embed(a, coordinator, worldA.Rank);
        var requestB = Embed(b, coordinator, worldB.Rank);
        Assert.Equal([worldA.Rank, 2 + worldA.Rank], requestA.Blocks);
        Assert.Equal([0, 1, 2], requestA.Blocks.Concat(requestB.Blocks).Order());
        Assert.Equal((SomPlan, 2L), (requestA.Plan, requestA.Step)); // held after global step 2, the last autoencoder step
        // SOM pre-training then runs on the replica with every sample's row in place, and the joint phase forms a new world.
        Join(a, coordinator);
        Assert.True(backend.SomEmbeddings.TryDequeue(out var fitted));
        Assert.Equal(Rows(0, 8), fitted);
    }

    [Fact]
    public void Should_ask_the_next_world_for_the_embedding_blocks_a_lost_worker_did_not_send()
    {
        var (coordinator, _, backend, a, b, worldA, worldB) = TwoWorkersToSomPretraining();
        Embed(a, coordinator, worldA.Rank);
        var requestB = b.ExpectMsg<EmbedBlocks>();
        Assert.Equal([1], requestB.Blocks);
        Sys.Stop(b.Ref); // b dies before it sends its block
        var alone = Join(a, coordinator);
        Assert.Equal(1, alone.WorldSize);
        var missing = Embed(a, coordinator, 0);
        Assert.Equal([1], missing.Blocks);
        Join(a, coordinator);
        Assert.True(backend.SomEmbeddings.TryDequeue(out var fitted));
        Assert.Equal(Rows(0, 8), fitted);
    }

    [Fact]
    public void Should_drop_a_worker_that_sends_an_embedding_block_it_was_not_asked_for_and_fail_on_one_that_cannot_embed()
    {
        var (coordinator, completion, _, a, b, worldA, _) = TwoWorkersToSomPretraining();
        var requestA = a.ExpectMsg<EmbedBlocks>();
        b.ExpectMsg<EmbedBlocks>();
        // a sends b's block: dropped, and b alone is asked for every block.
        Embed(a, coordinator, worldA.Rank, requestA, only: [1]);
        Assert.Contains("block 1, which it was not asked for", a.ExpectMsg<WorkerDropped>().Reason);
        var alone = Join(b, coordinator);
        var again = b.ExpectMsg<EmbedBlocks>();
        Assert.Equal([0, 1, 2], again.Blocks);
        // A block of the wrong size is unusable too; here b instead reports that it cannot read its data: the run fails naming it.
        b.Send(coordinator, new BlocksFailed(again.RunId, again.MembershipEpoch, again.Step, alone.Rank, "shard train-000003.tar: unexpected end of archive"));
        var failed = b.ExpectMsg<RunFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("worker b", failed.Reason);
        Assert.Contains("could not embed SOM pre-training's samples", failed.Reason);
        Assert.Contains("train-000003.tar", failed.Reason);
    }

    [Fact]
    public void Should_drop_a_worker_whose_embedding_block_has_the_wrong_size()
    {
        var (coordinator, _, _, a, b, worldA, _) = TwoWorkersToSomPretraining();
        var requestA = a.ExpectMsg<EmbedBlocks>();
        b.ExpectMsg<EmbedBlocks>();
        a.Send(coordinator, new BlockEmbedded(requestA.RunId, requestA.MembershipEpoch, requestA.Step, worldA.Rank, 0, new byte[5]));
        Assert.Contains("holds 5 bytes", a.ExpectMsg<WorkerDropped>().Reason);
    }
}
