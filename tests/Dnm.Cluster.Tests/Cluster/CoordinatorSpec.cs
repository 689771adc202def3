using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Tests.Support;
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
        Assert.Contains("rank 0 (w0)", failed.Reason);
        await Assert.ThrowsAsync<ClusterRunException>(() => completion.Task.WaitAsync(TimeSpan.FromSeconds(5)));
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
    public void Should_reject_a_worker_of_another_version_or_model_shape()
    {
        var (coordinator, _) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var old = Worker(coordinator, "old", version: "0.0.1-old");
        Assert.Contains("0.0.1-old", old.ExpectMsg<RegistrationRejected>().Reason);
        var other = Worker(coordinator, "other", statsLength: 11);
        Assert.Contains("different model shape", other.ExpectMsg<RegistrationRejected>().Reason);
    }
}
