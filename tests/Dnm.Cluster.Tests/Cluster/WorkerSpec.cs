using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using Dnm.Cluster.Protocol;
using Dnm.Cluster.Workers;
using Dnm.Core.Training;
using Xunit.Abstractions;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>The worker actor, with a TestProbe as the singleton proxy and another as the coordinator.</summary>
public sealed class WorkerSpec(ITestOutputHelper output) : TestKit(output: output)
{
    private sealed class FakeReplica : IWorkerBackend
    {
        public int Left;
        public Task<WorkerPrepared> PrepareAsync(RegistrationAccepted accepted) => Task.FromResult(new WorkerPrepared(8, ScriptedBackend.Shape, ScriptedBackend.StatsLength));
        public Task<ulong> JoinWorldAsync(FormWorld world) => Task.FromResult(ScriptedBackend.ReplicaChecksum);
        public Task<WorkerStepResult> RunStepAsync(StartStep step) => Task.FromResult(new WorkerStepResult(null, TimeSpan.Zero));
        public Task<byte[]> EvaluateAsync(EvaluateBlocks request) => Task.FromResult(new byte[] { (byte)request.Blocks.Length });
        /// <summary>Each block's rows are its number, then a failure if a block is negative.</summary>
        public Task EmbedAsync(EmbedBlocks request, Action<int, byte[]> emit)
        {
            foreach (var block in request.Blocks)
            {
                if (block < 0) return Task.FromException(new IOException("shard train-000003.tar: unexpected end of archive"));
                emit(block, EmbeddingGather.Encode(Enumerable.Repeat((float)block, request.Plan.Bytes(block) / sizeof(float)).ToArray()));
            }
            return Task.CompletedTask;
        }
        public void LeaveWorld() => Interlocked.Increment(ref Left);
        public void Dispose() { }
    }

    private static readonly Guid Run = Guid.NewGuid();

    private (IActorRef Worker, TestProbe Proxy, FakeReplica Replica) Start()
    {
        var proxy = CreateTestProbe("proxy");
        var replica = new FakeReplica();
        var settings = new WorkerSettings("w0", "cpu") { RegisterInterval = TimeSpan.FromMilliseconds(100) };
        return (Sys.ActorOf(WorkerActor.Props(settings, proxy.Ref, () => replica, null)), proxy, replica);
    }

    private static TestProbe Accept(TestKit kit, IActorRef worker, TestProbe proxy)
    {
        var register = proxy.ExpectMsg<RegisterWorker>(r => r.WorkerId == "w0" && r.ProtocolVersion == ClusterProtocol.Version);
        var coordinator = kit.CreateTestProbe("coordinator");
        coordinator.Send(worker, new RegistrationAccepted(Run, "{}", 8, ScriptedBackend.Shape, ScriptedBackend.StatsLength, register.Nonce));
        coordinator.ExpectMsg<WorkerReady>();
        return coordinator;
    }

    private static StartStep Step(long epoch, long step) =>
        new(Run, step, TrainingPhase.Pretrain, 0, (int)step, StepMode.Autoencoder, 1, 0.3, 4, epoch, 0, false);

    [Fact]
    public void Should_offer_itself_until_accepted_then_stop_registering()
    {
        var (worker, proxy, _) = Start();
        proxy.ExpectMsg<RegisterWorker>();
        Accept(this, worker, proxy);
        proxy.ReceiveWhile<object>(TimeSpan.FromMilliseconds(300), m => m); // repeats sent before the answer
        proxy.ExpectNoMsg(TimeSpan.FromMilliseconds(400));
    }

    [Fact]
    public void Should_warn_while_no_coordinator_answers_and_not_once_one_has()
    {
        var proxy = CreateTestProbe("proxy");
        var settings = new WorkerSettings("w0", "cpu")
        {
            RegisterInterval = TimeSpan.FromMilliseconds(50), UnansweredWarningEvery = TimeSpan.FromMilliseconds(400),
        };
        var worker = Sys.ActorOf(WorkerActor.Props(settings, proxy.Ref, () => new FakeReplica(), null));
        EventFilter.Warning(contains: "no coordinator has answered").Expect(2, TimeSpan.FromSeconds(3), () => { });
        proxy.ReceiveWhile<object>(TimeSpan.FromMilliseconds(100), m => m);
        Accept(this, worker, proxy);
        EventFilter.Warning(contains: "no coordinator has answered").Expect(0, TimeSpan.FromSeconds(1), () => { });
    }

    [Fact]
    public void Should_ignore_a_step_of_another_membership_epoch()
    {
        var (worker, proxy, _) = Start();
        var coordinator = Accept(this, worker, proxy);
        coordinator.Send(worker, new FormWorld(Run, 3, Guid.NewGuid(), 0, 1, "127.0.0.1:1", 0, 0, 10));
        coordinator.ExpectMsg<WorldJoined>(j => j.MembershipEpoch == 3 && j.Checksum == ScriptedBackend.ReplicaChecksum);
        coordinator.Send(worker, Step(2, 0));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        coordinator.Send(worker, Step(3, 0));
        coordinator.ExpectMsg<StepCompleted>(c => c.MembershipEpoch == 3 && c.Step == 0 && c.Rank == 0);
    }

    [Fact]
    public void Should_leave_its_world_and_register_again_when_dropped()
    {
        var (worker, proxy, replica) = Start();
        var coordinator = Accept(this, worker, proxy);
        coordinator.Send(worker, new WorkerDropped(Run, "test"));
        proxy.FishForMessage(m => m is RegisterWorker, TimeSpan.FromSeconds(3));
        Assert.True(replica.Left >= 1);
    }

    [Fact]
    public void Should_register_with_the_successor_when_the_coordinator_stops()
    {
        var (worker, proxy, _) = Start();
        var coordinator = Accept(this, worker, proxy);
        // Let the registration repeats already in flight arrive before the coordinator goes.
        proxy.ReceiveWhile<object>(TimeSpan.FromMilliseconds(300), m => m);
        Sys.Stop(coordinator.Ref);
        proxy.ExpectMsg<RegisterWorker>(TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void Should_drop_an_acceptance_or_rejection_that_does_not_echo_its_nonce()
    {
        var (worker, proxy, _) = Start();
        var nonce = proxy.ExpectMsg<RegisterWorker>().Nonce;
        var rogue = CreateTestProbe("rogue");
        EventFilter.Warning(contains: "dropped RegistrationAccepted").ExpectOne(() =>
            rogue.Send(worker, new RegistrationAccepted(Run, "{}", 8, ScriptedBackend.Shape, ScriptedBackend.StatsLength, Guid.NewGuid())));
        EventFilter.Warning(contains: "dropped RegistrationRejected").ExpectOne(() =>
            rogue.Send(worker, new RegistrationRejected(Run, "go away", Guid.NewGuid())));
        rogue.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // no WorkerReady: it did not prepare for the rogue
        // Still registering, and the real coordinator's answer (with the nonce) is accepted.
        proxy.FishForMessage(m => m is RegisterWorker r && r.Nonce == nonce, TimeSpan.FromSeconds(3));
        var coordinator = CreateTestProbe("coordinator");
        coordinator.Send(worker, new RegistrationAccepted(Run, "{}", 8, ScriptedBackend.Shape, ScriptedBackend.StatsLength, nonce));
        coordinator.ExpectMsg<WorkerReady>();
    }

    [Fact]
    public void Should_stop_only_on_its_own_coordinators_RunFinished_or_RunFailed()
    {
        var (worker, proxy, _) = Start();
        var coordinator = Accept(this, worker, proxy);
        Watch(worker);
        var rogue = CreateTestProbe("rogue");
        EventFilter.Warning(contains: "dropped RunFinished").ExpectOne(() => rogue.Send(worker, new RunFinished(Run, 7, "/tmp/x")));
        EventFilter.Warning(contains: "dropped RunFailed").ExpectOne(() => rogue.Send(worker, new RunFailed(Run, "stop")));
        EventFilter.Warning(contains: "dropped StartStep").ExpectOne(() => rogue.Send(worker, Step(0, 0)));
        EventFilter.Warning(contains: "dropped WorkerDropped").ExpectOne(() => rogue.Send(worker, new WorkerDropped(Run, "rogue")));
        // Still the coordinator's worker: it answers a world, and stops on the coordinator's own RunFinished.
        coordinator.Send(worker, new FormWorld(Run, 1, Guid.NewGuid(), 0, 1, "127.0.0.1:1", 0, 0, 10));
        coordinator.ExpectMsg<WorldJoined>();
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        coordinator.Send(worker, new RunFinished(Run, 7, "/tmp/x"));
        ExpectTerminated(worker);
    }

    [Fact]
    public void Should_tally_its_evaluation_blocks_for_its_coordinator_only_and_in_its_world()
    {
        var (worker, proxy, _) = Start();
        var coordinator = Accept(this, worker, proxy);
        coordinator.Send(worker, new FormWorld(Run, 1, Guid.NewGuid(), 0, 1, "127.0.0.1:1", 0, 0, 10));
        coordinator.ExpectMsg<WorldJoined>();
        var plan = new Core.Evaluation.EvaluationBlocks(8, 4, 4);
        var rogue = CreateTestProbe("rogue");
        EventFilter.Warning(contains: "dropped EvaluateBlocks").ExpectOne(() => rogue.Send(worker, new EvaluateBlocks(Run, 1, 5, plan, [0, 1, 2])));
        coordinator.Send(worker, new EvaluateBlocks(Run, 0, 5, plan, [0])); // an earlier world's request: stale
        coordinator.Send(worker, new EvaluateBlocks(Run, 1, 5, plan, [0, 2]));
        var answer = coordinator.ExpectMsg<BlocksEvaluated>();
        Assert.Equal((1L, 5L, 0), (answer.MembershipEpoch, answer.Step, answer.Rank));
        Assert.Equal([(byte)2], answer.Tally); // the fake replica's tally: how many blocks it was given
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        rogue.ExpectNoMsg(TimeSpan.FromMilliseconds(10));
    }

    [Fact]
    public void Should_send_each_embedding_block_to_its_coordinator_as_this_rank_and_report_a_failure()
    {
        var (worker, proxy, _) = Start();
        var coordinator = Accept(this, worker, proxy);
        coordinator.Send(worker, new FormWorld(Run, 1, Guid.NewGuid(), 1, 2, "127.0.0.1:1", 0, 0, 10));
        coordinator.ExpectMsg<WorldJoined>();
        var plan = new EmbeddingBlocks(Samples: 10, Dim: 2, BlockSize: 4);
        var rogue = CreateTestProbe("rogue");
        EventFilter.Warning(contains: "dropped EmbedBlocks").ExpectOne(() => rogue.Send(worker, new EmbedBlocks(Run, 1, 5, plan, [1])));
        coordinator.Send(worker, new EmbedBlocks(Run, 0, 5, plan, [0])); // an earlier world's request: stale
        coordinator.Send(worker, new EmbedBlocks(Run, 1, 5, plan, [0, 2]));
        // One message a block, in order, from the worker actor itself (the coordinator checks the sender of each rank).
        foreach (var block in new[] { 0, 2 })
        {
            var sent = coordinator.ExpectMsg<BlockEmbedded>();
            Assert.Equal((1L, 5L, 1, block), (sent.MembershipEpoch, sent.Step, sent.Rank, sent.Block));
            Assert.Equal(worker, coordinator.LastSender);
            var gather = new EmbeddingGather(plan);
            gather.Add(block, sent.Embeddings);
            Assert.True(gather.Done(block));
        }
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        coordinator.Send(worker, new EmbedBlocks(Run, 1, 5, plan, [-1]));
        var failed = coordinator.ExpectMsg<BlocksFailed>();
        Assert.Equal((1L, 5L, 1), (failed.MembershipEpoch, failed.Step, failed.Rank));
        Assert.Contains("train-000003.tar", failed.Reason);
        rogue.ExpectNoMsg(TimeSpan.FromMilliseconds(10));
    }

    [Fact]
    public void A_node_monitor_should_end_the_run_only_on_the_coordinator_singletons_word()
    {
        var completion = new RunCompletion();
        var monitor = Sys.ActorOf(NodeMonitor.Props(completion), NodeMonitor.Name);
        var rogue = CreateTestProbe("rogue");
        EventFilter.Warning(contains: "node monitor dropped RunFinished").ExpectOne(() => rogue.Send(monitor, new RunFinished(Run, 7, "/tmp/x")));
        EventFilter.Warning(contains: "node monitor dropped RunFailed").ExpectOne(() => rogue.Send(monitor, new RunFailed(Run, "stop")));
        Assert.False(completion.Task.IsCompleted);
        // An actor at the singleton's path (/user/dnm-coordinator/dnm-coordinator) in this system is the coordinator.
        var manager = Sys.ActorOf(Props.Create(() => new Relay(monitor, true)), Hosting.DnmAkkaExtensions.CoordinatorName);
        manager.Tell(new RunFinished(Run, 7, "/tmp/x"));
        AwaitCondition(() => completion.Task.IsCompletedSuccessfully, TimeSpan.FromSeconds(3));
    }

    /// <summary>A parent named like the singleton manager, whose child of the same name tells the monitor what the parent gets.</summary>
    private sealed class Relay : ReceiveActor
    {
        public Relay(IActorRef target, bool parent)
        {
            var child = parent ? Context.ActorOf(Props.Create(() => new Relay(target, false)), Hosting.DnmAkkaExtensions.CoordinatorName) : null;
            ReceiveAny(m => (child ?? target).Tell(m, child is null ? Self : Sender));
        }
    }
}
