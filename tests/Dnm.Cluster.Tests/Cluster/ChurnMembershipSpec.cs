using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Tests.Support;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// The coordinator's membership under churn (workers killed and started again): unreachable nodes, restarted nodes, ranks
/// that never connect, and workers that join while worlds form. Local probes are workers of the coordinator's own node;
/// "remote" probes live in a second actor system that reaches the coordinator over Akka.Remote, so that they have a node
/// address of their own, which the reachability events (sent here by the spec, with that system's real member) name.
/// </summary>
public sealed class ChurnMembershipSpec : TestKit
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    // Messages to and from the remote probes cross Akka.Remote on a loaded machine.
    private static readonly TimeSpan Remote = TimeSpan.FromSeconds(15);

    private static Config Remoting(string provider) => ConfigurationFactory.ParseString($$"""
        akka.actor.provider = {{provider}}
        akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        """);

    private readonly ActorSystem other = ActorSystem.Create("dnm", Remoting("cluster"));

    public ChurnMembershipSpec(ITestOutputHelper output) : base(Remoting("remote"), "coordinator", output)
    {
    }

    /// <summary>What the coordinator said (its log lines).</summary>
    private readonly Said said = new();

    private (IActorRef Coordinator, RunCompletion Completion, ScriptedBackend Backend) Start(ScriptedBackend backend, CoordinatorSettings settings)
    {
        var completion = new RunCompletion();
        return (Sys.ActorOf(CoordinatorActor.Props(settings, () => backend, said, completion), "coordinator"), completion, backend);
    }

    private sealed class Said : Core.Training.ITrainingObserver
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> lines = new();
        public void OnMessage(string message) => lines.Enqueue(message);
        public bool Any(string start) => lines.Any(l => l.StartsWith(start, StringComparison.Ordinal));
    }

    /// <summary>The coordinator as the other actor system sees it: its replies to the remote probes cross the network.</summary>
    private IActorRef FromOther(IActorRef coordinator)
    {
        var address = ((ExtendedActorSystem)Sys).Provider.DefaultAddress;
        return other.ActorSelection(coordinator.Path.ToStringWithAddress(address)).ResolveOne(Remote).GetAwaiter().GetResult();
    }

    /// <summary>The other actor system's cluster member: what the failure detector's events about its node carry.</summary>
    private Member OtherNode => Akka.Cluster.Cluster.Get(other).SelfMember;

    /// <summary>Registers <paramref name="probe"/> as worker <paramref name="id"/> and reports it ready.</summary>
    private static void Ready(TestProbe probe, IActorRef coordinator, string id)
    {
        probe.Send(coordinator, new RegisterWorker(id, ClusterProtocol.Version, ClusterProtocol.DnmVersion, "cpu", Guid.NewGuid()));
        var accepted = probe.ExpectMsg<RegistrationAccepted>(Remote);
        probe.Send(coordinator, new WorkerReady(accepted.RunId, id, 8, ScriptedBackend.Shape, ScriptedBackend.StatsLength));
    }

    private TestProbe Local(IActorRef coordinator, string id, string? name = null)
    {
        var probe = CreateTestProbe(name ?? id);
        Ready(probe, coordinator, id);
        return probe;
    }

    /// <summary>A worker on the other node; its messages go through <paramref name="remote"/> (<see cref="FromOther"/>).</summary>
    private TestProbe OnOtherNode(IActorRef remote, string id)
    {
        var probe = CreateTestProbe(other, id);
        Ready(probe, remote, id);
        return probe;
    }

    private static FormWorld Join(TestProbe worker, IActorRef coordinator)
    {
        var world = worker.ExpectMsg<FormWorld>(Remote);
        worker.Send(coordinator, new WorldJoined(world.RunId, world.MembershipEpoch, world.Rank, ScriptedBackend.ReplicaChecksum));
        return world;
    }

    /// <summary>Local <paramref name="a"/> and remote <paramref name="b"/> run the two autoencoder steps (0 and 1) together.</summary>
    private static void PretrainTogether(TestProbe a, IActorRef coordinator, int rankA, TestProbe b, IActorRef remote, int rankB)
    {
        for (var step = 0; step < 2; step++)
        {
            var start = a.ExpectMsg<StartStep>();
            b.ExpectMsg<StartStep>(Remote);
            Ack(a, coordinator, start, rankA);
            Ack(b, remote, start, rankB);
        }
    }

    private static void Ack(TestProbe worker, IActorRef coordinator, StartStep step, int rank) =>
        worker.Send(coordinator, new StepCompleted(step.RunId, step.MembershipEpoch, step.Step, rank, null, 0));

    [Fact]
    public void Should_form_the_next_world_at_once_without_a_forming_member_whose_node_is_unreachable_and_take_it_back_when_reachable()
    {
        var (coordinator, _, _) = Start(new ScriptedBackend(), new CoordinatorSettings { MinWorkers = 2 });
        var remote = FromOther(coordinator);
        var a = Local(coordinator, "a");
        var b = OnOtherNode(remote, "b");
        var (rankA, rankB) = (Join(a, coordinator).Rank, Join(b, remote).Rank);
        PretrainTogether(a, coordinator, rankA, b, remote, rankB);
        // After SOM pre-training the joint phase's world forms; b's node is killed before b connects.
        var forming = a.ExpectMsg<FormWorld>();
        b.ExpectMsg<FormWorld>(Remote);
        coordinator.Tell(new ClusterEvent.UnreachableMember(OtherNode));
        // Not after the world timeout, nor when the cluster downs b's node: a world of a alone forms now.
        var alone = Join(a, coordinator);
        Assert.Equal((1, 0), (alone.WorldSize, alone.Rank));
        Assert.True(alone.MembershipEpoch > forming.MembershipEpoch);
        Assert.True(said.Any($"membership epoch {alone.MembershipEpoch}: 1 worker(s) [a], data plane 127.0.0.1:{9000 + alone.MembershipEpoch}; left out, unreachable: b"));
        var joint = a.ExpectMsg<StartStep>();
        Assert.Equal((2, alone.MembershipEpoch), (joint.Step, joint.MembershipEpoch));
        // b's node is back (it was a long pause, not a death): b takes part again after this step. The world must first
        // step as long as it took to form, a moment here.
        coordinator.Tell(new ClusterEvent.ReachableMember(OtherNode));
        a.ExpectNoMsg(TimeSpan.FromSeconds(1));
        Ack(a, coordinator, joint, 0);
        var both = Join(a, coordinator);
        Assert.Equal(2, both.WorldSize);
        Assert.Equal(both.MembershipEpoch, Join(b, remote).MembershipEpoch);
    }

    [Fact]
    public void Should_give_an_unreachable_members_embedding_blocks_to_the_next_world_at_once()
    {
        var plan = new Core.Training.EmbeddingBlocks(Samples: 8, Dim: 2, BlockSize: 3);
        var (coordinator, _, backend) = Start(new ScriptedBackend { SomEmbedding = plan }, new CoordinatorSettings { MinWorkers = 2 });
        var remote = FromOther(coordinator);
        var a = Local(coordinator, "a");
        var b = OnOtherNode(remote, "b");
        var (rankA, rankB) = (Join(a, coordinator).Rank, Join(b, remote).Rank);
        PretrainTogether(a, coordinator, rankA, b, remote, rankB);
        // Sample i's embedding is (i, -i).
        static byte[] Rows(Core.Training.EmbeddingBlocks p, int block) => Core.Training.EmbeddingGather.Encode(
            Enumerable.Range(p[block].Start, p[block].Length).SelectMany(i => new[] { (float)i, -i }).ToArray());
        var mine = a.ExpectMsg<EmbedBlocks>();
        Assert.Equal([1], b.ExpectMsg<EmbedBlocks>(Remote).Blocks);
        foreach (var block in mine.Blocks)
            a.Send(coordinator, new BlockEmbedded(mine.RunId, mine.MembershipEpoch, mine.Step, rankA, block, Rows(plan, block)));
        // b's node dies before it sends its block: a world of a alone is asked for it now, not when the cluster downs b.
        coordinator.Tell(new ClusterEvent.UnreachableMember(OtherNode));
        var alone = Join(a, coordinator);
        Assert.Equal(1, alone.WorldSize);
        var missing = a.ExpectMsg<EmbedBlocks>();
        Assert.Equal([1], missing.Blocks);
        Assert.Equal(alone.MembershipEpoch, missing.MembershipEpoch);
        a.Send(coordinator, new BlockEmbedded(missing.RunId, missing.MembershipEpoch, missing.Step, 0, 1, Rows(plan, 1)));
        Join(a, coordinator); // SOM pre-training done: the joint phase's world
        Assert.True(backend.SomEmbeddings.TryDequeue(out var fitted));
        Assert.Equal(Enumerable.Range(0, 8).SelectMany(i => new[] { (float)i, -i }), fitted);
    }

    [Fact]
    public void Should_complete_a_committed_step_without_the_acknowledgement_of_an_unreachable_member_and_leave_it_out_after()
    {
        var (coordinator, _, backend) = Start(new ScriptedBackend(), new CoordinatorSettings { MinWorkers = 2 });
        var remote = FromOther(coordinator);
        var a = Local(coordinator, "a");
        var b = OnOtherNode(remote, "b");
        var rankA = Join(a, coordinator).Rank;
        Join(b, remote);
        var start = a.ExpectMsg<StartStep>();
        b.ExpectMsg<StartStep>(Remote);
        AwaitCondition(() => backend.Committed.Count == 1, Remote); // committed; b dies before it acknowledges
        Ack(a, coordinator, start, rankA);
        a.ExpectNoMsg(Quiet);
        coordinator.Tell(new ClusterEvent.UnreachableMember(OtherNode));
        // The step is complete without b's acknowledgement, and the next one runs in a world without b.
        var next = Join(a, coordinator);
        Assert.Equal(1, next.WorldSize);
        Assert.Equal(start.Step + 1, a.ExpectMsg<StartStep>().Step);
        b.ExpectNoMsg(Quiet);
    }

    [Fact]
    public void Should_retry_a_step_at_once_without_an_unreachable_member_whose_contribution_has_not_arrived()
    {
        // Held reductions: the scripted backend reports no contribution arrived.
        var (coordinator, _, backend) = Start(new ScriptedBackend { HoldReductions = true }, new CoordinatorSettings { MinWorkers = 2 });
        var remote = FromOther(coordinator);
        var a = Local(coordinator, "a");
        var b = OnOtherNode(remote, "b");
        Join(a, coordinator);
        Join(b, remote);
        var start = a.ExpectMsg<StartStep>();
        // b's machine is gone: no socket closes, so only the failure detector tells (long before the step timeout).
        coordinator.Tell(new ClusterEvent.UnreachableMember(OtherNode));
        var retried = Join(a, coordinator);
        Assert.Equal(1, retried.WorldSize);
        var again = a.ExpectMsg<StartStep>();
        Assert.Equal((start.Step, retried.MembershipEpoch), (again.Step, again.MembershipEpoch));
        backend.Release(again.MembershipEpoch, again.Step);
        Ack(a, coordinator, again, 0);
        a.ExpectMsg<StartStep>(s => s.Step == start.Step + 1);
        Assert.Equal([start.Step], backend.Committed.ToArray());
    }

    [Fact]
    public void Should_drop_a_worker_at_once_when_its_restarted_node_registers_it_again()
    {
        var (coordinator, _, backend) = Start(new ScriptedBackend { HoldReductions = true }, new CoordinatorSettings());
        // Two actors of one node address with one id: the second is the same worker after its process restarted.
        var before = Local(coordinator, "w0");
        Join(before, coordinator);
        var start = before.ExpectMsg<StartStep>();
        var after = Local(coordinator, "w0", "w0-restarted");
        Assert.StartsWith("superseded: it registered again from a restarted node", before.ExpectMsg<WorkerDropped>().Reason);
        // The step in flight is abandoned and retried by the restarted worker, in a new world.
        var world = Join(after, coordinator);
        Assert.Equal(1, world.WorldSize);
        var again = after.ExpectMsg<StartStep>();
        Assert.Equal(start.Step, again.Step);
        backend.Release(again.MembershipEpoch, again.Step);
        Ack(after, coordinator, again, 0);
        after.ExpectMsg<StartStep>(s => s.Step == start.Step + 1);
        before.ExpectNoMsg(Quiet);
    }

    [Fact]
    public void Should_refuse_a_worker_id_that_a_worker_of_another_node_holds_naming_both_and_keep_the_holder()
    {
        var (coordinator, _, _) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var remote = FromOther(coordinator);
        var holder = Local(coordinator, "w0");
        var world = Join(holder, coordinator);
        var claimant = CreateTestProbe(other, "claimant");
        claimant.Send(remote, new RegisterWorker("w0", ClusterProtocol.Version, ClusterProtocol.DnmVersion, "cpu", Guid.NewGuid()));
        var refused = claimant.ExpectMsg<RegistrationRejected>(Remote).Reason;
        Assert.StartsWith("worker id w0 is already registered from another node", refused);
        Assert.Contains(holder.Ref.Path.ToString(), refused);
        Assert.Contains("give every node its own", refused);
        // The holder keeps its rank: no drop, no new world.
        var step = holder.ExpectMsg<StartStep>();
        Assert.Equal(world.MembershipEpoch, step.MembershipEpoch);
    }

    [Fact]
    public void Should_evict_the_ranks_that_never_connected_to_a_forming_world_and_form_the_next_without_them()
    {
        // Rank 1 of the first world never connects (MaxAttempts 1: forming the same world again would fail the run).
        var worlds = 0;
        var backend = new ScriptedBackend { MissingOf = _ => Interlocked.Increment(ref worlds) == 1 ? [1] : null };
        var (coordinator, completion, _) = Start(backend, new CoordinatorSettings { MinWorkers = 2, MaxAttempts = 1 });
        var a = Local(coordinator, "a");
        var b = Local(coordinator, "b");
        var worldA = a.ExpectMsg<FormWorld>();
        b.ExpectMsg<FormWorld>();
        var (connected, silent) = worldA.Rank == 0 ? (a, b) : (b, a);
        Assert.StartsWith("did not connect to the data plane of membership epoch 1", silent.ExpectMsg<WorkerDropped>().Reason);
        var silentId = silent == a ? "a" : "b";
        Assert.True(said.Any($"dropped worker {silentId}: did not connect to the data plane of membership epoch 1"));
        // Dropped, the worker registers again (as a real one does), and the next world forms with both.
        Ready(silent, coordinator, silentId);
        var next = Join(connected, coordinator);
        Join(silent, coordinator);
        Assert.Equal((2, 2L), (next.WorldSize, next.MembershipEpoch));
        connected.ExpectMsg<StartStep>();
        Assert.False(completion.Task.IsCompleted);
    }

    [Fact]
    public void Should_let_a_world_step_before_it_is_formed_again_for_a_worker_that_became_ready_while_it_formed()
    {
        var (coordinator, _, _) = Start(new ScriptedBackend(), new CoordinatorSettings());
        var a = Local(coordinator, "a");
        var first = a.ExpectMsg<FormWorld>();
        var b = Local(coordinator, "b"); // ready while a's world forms
        a.Send(coordinator, new WorldJoined(first.RunId, first.MembershipEpoch, first.Rank, ScriptedBackend.ReplicaChecksum));
        // The formed world steps rather than being formed again at once for b.
        var step = a.ExpectMsg<StartStep>();
        Assert.Equal(first.MembershipEpoch, step.MembershipEpoch);
        // It has stepped longer than it took to form: b joins the next world.
        a.ExpectNoMsg(TimeSpan.FromSeconds(1));
        Ack(a, coordinator, step, 0);
        var both = Join(a, coordinator);
        Assert.Equal(2, both.WorldSize);
        Join(b, coordinator);
        Assert.Equal(step.Step + 1, a.ExpectMsg<StartStep>().Step);
    }

    [Fact]
    public void Should_not_form_a_new_world_when_a_worker_outside_it_leaves()
    {
        var (coordinator, _, backend) = Start(new ScriptedBackend { HoldReductions = true }, new CoordinatorSettings());
        var a = Local(coordinator, "a");
        var world = Join(a, coordinator);
        var step = a.ExpectMsg<StartStep>();
        var b = Local(coordinator, "b"); // ready, waiting to join
        Watch(b.Ref);
        Sys.Stop(b.Ref);                 // and killed before it did
        ExpectTerminated(b.Ref);
        backend.Release(step.MembershipEpoch, step.Step);
        Ack(a, coordinator, step, 0);
        // Nobody to admit and nobody lost: the next step runs in the same world.
        var next = a.ExpectMsg<StartStep>();
        Assert.Equal((step.Step + 1, world.MembershipEpoch), (next.Step, next.MembershipEpoch));
    }

    protected override void AfterAll()
    {
        other.Terminate().Wait(TimeSpan.FromSeconds(10));
        base.AfterAll();
    }
}
