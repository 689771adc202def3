using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit.Xunit2;
using Dnm.Cluster.Protocol;

namespace Dnm.Cluster.Tests.Cluster;

/// <summary>
/// The node monitor's sender check across the network: an actor system that reaches a cluster node over Akka.Remote without
/// being a member (what a process without the cluster's certificate could at most attempt without TLS) cannot end its run,
/// even from an actor at the coordinator singleton's path.
/// </summary>
public sealed class NonMemberSenderSpec : IDisposable
{
    private static Config Remote(string provider) => ConfigurationFactory.ParseString($$"""
        akka.actor.provider = {{provider}}
        akka.remote.dot-netty.tcp { hostname = 127.0.0.1, port = 0 }
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        """);

    private readonly ActorSystem member = ActorSystem.Create("dnm", Remote("cluster"));
    private readonly ActorSystem outsider = ActorSystem.Create("dnm", Remote("remote"));

    [Fact]
    public async Task A_node_monitor_should_drop_RunFinished_and_RunFailed_sent_by_a_non_member()
    {
        // A one-node cluster: the member joins itself, so the outsider is the only other system around.
        var cluster = Akka.Cluster.Cluster.Get(member);
        var up = new TaskCompletionSource();
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        cluster.Join(cluster.SelfAddress);
        await up.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var completion = new RunCompletion();
        member.ActorOf(NodeMonitor.Props(completion), NodeMonitor.Name);
        using var kit = new TestKit(member);
        var warnings = kit.CreateTestProbe();
        member.EventStream.Subscribe(warnings.Ref, typeof(Warning));

        // The outsider's actor sits at /user/dnm-coordinator/dnm-coordinator, the singleton's path, on a non-member address.
        var monitor = $"{cluster.SelfAddress}/user/{NodeMonitor.Name}";
        var fake = outsider.ActorOf(Props.Create(() => new FakeCoordinator(monitor)), Hosting.DnmAkkaExtensions.CoordinatorName);
        fake.Tell(new RunFinished(Guid.NewGuid(), 7, "/tmp/x"));
        warnings.FishForMessage<Warning>(w => w.Message.ToString()!.Contains("node monitor dropped RunFinished", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        fake.Tell(new RunFailed(Guid.NewGuid(), "stop"));
        warnings.FishForMessage<Warning>(w => w.Message.ToString()!.Contains("node monitor dropped RunFailed", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        Assert.False(completion.Task.IsCompleted);
    }

    /// <summary>A parent named like the singleton manager whose child, of the same name, sends the monitor what the parent gets.</summary>
    private sealed class FakeCoordinator : ReceiveActor
    {
        public FakeCoordinator(string monitor)
        {
            var child = Context.ActorOf(Props.Create(() => new Sender(monitor)), Hosting.DnmAkkaExtensions.CoordinatorName);
            ReceiveAny(m => child.Forward(m));
        }
    }

    private sealed class Sender : ReceiveActor
    {
        public Sender(string monitor) => ReceiveAny(m => Context.ActorSelection(monitor).Tell(m));
    }

    public void Dispose()
    {
        outsider.Terminate().Wait(TimeSpan.FromSeconds(10));
        member.Terminate().Wait(TimeSpan.FromSeconds(10));
    }
}
