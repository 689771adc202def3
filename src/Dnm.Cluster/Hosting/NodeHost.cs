using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Event;
using Akka.Hosting;
using Akka.Remote.Hosting;
using Dnm.Cluster.Coordination;
using Dnm.Cluster.Replica;
using Dnm.Cluster.Workers;
using Dnm.Core.Config;
using Dnm.Core.Runtime;
using Dnm.Core.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Dnm.Cluster.Hosting;

/// <summary>
/// Runs one cluster node until the run ends: `dnm node`, and (with coordinator and workers in one process
/// over loopback) `dnm train --workers N`. The coordinator role needs the run config; workers receive it.
/// </summary>
public static class NodeHost
{
    /// <param name="joined">Called once this node is Up in the cluster (what a `dnm node`'s /readyz reports), again after each rejoin.</param>
    /// <param name="telemetry">Where the coordinator and the workers record metrics and spans; none by default.</param>
    /// <param name="left">
    /// Called when this node leaves its cluster to rejoin it with a fresh actor system: what /readyz said of the old system
    /// (Up, a worker in a world) no longer holds until <paramref name="joined"/> is called for the new one.
    /// </param>
    /// <remarks>
    /// <paramref name="cancel"/> (SIGTERM, Ctrl+C) stops the node cleanly: a coordinator finishes or abandons the step in
    /// flight and writes the checkpoint of its last complete step; every node leaves the cluster. It ends in a
    /// <see cref="RunStoppedException"/>. A node that lost its coordinator for good, or that the split-brain resolver
    /// removed, leaves and joins the seeds again with a fresh actor system (in this process), as often as it takes.
    /// </remarks>
    public static async Task<ClusterRunResult> RunAsync(NodeOptions options, DnmConfig? config, ITrainingObserver observer, CancellationToken cancel,
        Action? joined = null, ClusterTelemetry? telemetry = null, Action? left = null)
    {
        telemetry ??= ClusterTelemetry.None;
        options = options.Validated();
        if (options.IsCoordinator)
        {
            if (config is null) throw new ConfigException("a coordinator node needs the run config (the `dnm train` flags, or DNM_CONFIG)");
            config.Validated();
        }
        // Certificates are read before anything starts, so a bad file fails the node at once, naming the file.
        using var tls = ClusterCertificates.Load(options);
        if (tls is not null) options = options with { DataPlane = options.DataPlane with { Tls = tls } };
        var wall = System.Diagnostics.Stopwatch.StartNew();
        for (var restart = 0; ; restart++)
        {
            var (result, rejoin) = await RunSystemAsync(options, config, observer, cancel, joined, left, telemetry, rejoining: restart > 0).ConfigureAwait(false);
            if (result is not null) return result with { Duration = wall.Elapsed };
            if (cancel.IsCancellationRequested) throw new RunStoppedException("stopped on request while rejoining the cluster");
            observer.OnMessage($"rejoining: {rejoin}; this node left its cluster and joins the seeds " +
                               $"{(options.Seeds.Count == 0 ? "(itself)" : string.Join(", ", options.Seeds))} again with a fresh actor system (rejoin {restart + 1})");
        }
    }

    /// <summary>One actor system's life: the run's result, or why the node must rejoin with a fresh one.</summary>
    private static async Task<(ClusterRunResult? Result, string? Rejoin)> RunSystemAsync(NodeOptions options, DnmConfig? config, ITrainingObserver observer,
        CancellationToken cancel, Action? joined, Action? left, ClusterTelemetry telemetry, bool rejoining)
    {
        var completion = new RunCompletion();
        using var host = new HostBuilder()
            .ConfigureServices(services =>
            {
                // The caller owns Ctrl+C and SIGTERM (it cancels); the host must not install its own handlers.
                services.AddSingleton<IHostLifetime, CallerOwnedLifetime>();
                services.AddAkka(options.ClusterName, (builder, _) => Configure(builder, options, config, observer, completion, telemetry));
            })
            .Build();
        // Not `cancel`: Akka.Hosting shuts the actor system down when the token given to StartAsync fires, before this
        // method could ask the coordinator to stop after its step (SIGTERM) and leave the cluster gracefully.
        await host.StartAsync(CancellationToken.None).ConfigureAwait(false);
        var stopping = 0;
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            // Not stopped by this method: the split-brain resolver downed this node (or Akka shut it down). Its
            // cluster is gone for it; a fresh actor system can join the seeds again.
            _ = system.WhenTerminated.ContinueWith(_ =>
            {
                if (Volatile.Read(ref stopping) == 0 && !cancel.IsCancellationRequested)
                    completion.RequestRejoin("this node's actor system stopped before the run ended (the split-brain resolver downed it, or it was shut down)");
            }, TaskScheduler.Default);
            try
            {
                var ending = Task.WhenAny(completion.Task, completion.RejoinRequested);
                // A node can take part in the run before it is Up (the leader cannot move it there while a member is
                // unreachable, as when a partition begins as it joins) and be downed, or see the run end, before it ever is:
                // then it rejoins or finishes at once instead of waiting out the join timeout (15 minutes in the manifests).
                if (await JoinAsync(system, options, rejoining, ending, cancel).ConfigureAwait(false) == JoinOutcome.Up)
                    joined?.Invoke();
                var ended = await ending.WaitAsync(cancel).ConfigureAwait(false);
                if (ended == completion.Task) return (await completion.Task.ConfigureAwait(false), null);
                // Whatever the run's own outcome says wins over a rejoin requested at the same moment.
                if (completion.Task.IsCompleted) return (await completion.Task.ConfigureAwait(false), null);
                // Said before the old system stops (that may take seconds): readiness follows the current system.
                left?.Invoke();
                return (null, completion.RejoinRequested.Result);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested && completion.Task.Status != TaskStatus.RanToCompletion)
            {
                return (await StopAsync(system, options, completion).ConfigureAwait(false), null);
            }
        }
        finally
        {
            Volatile.Write(ref stopping, 1);
            // Leaves the cluster gracefully (a coordinator hands the singleton over).
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await host.StopAsync(grace.Token).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A stop on request: the coordinator on this node, if it runs here, stops after the step in flight with a checkpoint
    /// (<see cref="SuspendRun"/>); every node then leaves the cluster. Throws <see cref="RunStoppedException"/>, or returns
    /// the result of a run that ended meanwhile.
    /// </summary>
    private static async Task<ClusterRunResult> StopAsync(ActorSystem system, NodeOptions options, RunCompletion completion)
    {
        if (options.IsCoordinator)
        {
            IActorRef? coordinator = null;
            try
            {
                coordinator = await system.ActorSelection($"/user/{DnmAkkaExtensions.CoordinatorName}/{DnmAkkaExtensions.CoordinatorName}")
                    .ResolveOne(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            }
            catch (ActorNotFoundException)
            {
                // A standby: the singleton runs on another node, which keeps the run going.
            }
            if (coordinator is not null)
            {
                coordinator.Tell(SuspendRun.Instance);
                try
                {
                    return await completion.Task.WaitAsync(options.StopTimeout).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    throw new RunStoppedException($"stopped without a new checkpoint: the coordinator did not write one within {options.StopTimeout.TotalSeconds:0}s; " +
                                                  "the run resumes from its last checkpoint");
                }
            }
        }
        throw new RunStoppedException("stopped on request; this node left the cluster");
    }

    private static void Configure(AkkaConfigurationBuilder builder, NodeOptions o, DnmConfig? config, ITrainingObserver observer, RunCompletion completion,
        ClusterTelemetry telemetry)
    {
        var roles = new List<string>();
        if (o.IsCoordinator) roles.Add(DnmAkkaExtensions.CoordinatorRole);
        if (o.IsWorker) roles.Add(DnmAkkaExtensions.WorkerRole);
        var devices = o.Devices.Count > 0 ? o.Devices : [config?.Device ?? "auto"];
        builder
            .ConfigureLoggers(l => l.LogLevel = LogLevelOf(o.AkkaLogLevel))
            .WithRemoting(Remoting(o))
            .WithClustering(new ClusterOptions
            {
                Roles = roles.ToArray(),
                // With TLS, Akka's addresses are akka.ssl.tcp://: a plain node's seeds name another protocol and never meet it.
                SeedNodes = o.Seeds.Select(s => $"akka{(o.DataPlane.Tls is null ? "" : ".ssl")}.tcp://{o.ClusterName}@{s}").ToArray(),
                SplitBrainResolver = new KeepMajorityOption(),
                AppVersion = Protocol.ClusterProtocol.DnmVersion,
            })
            .AddHocon($"akka.cluster.split-brain-resolver.stable-after = {o.DownAfter.TotalSeconds:0.###}s", HoconAddMode.Prepend)
            // Akka.Cluster.Tools' proxy starts its "failed to find an associated singleton ... after 30 seconds" timer
            // with no initial delay, so it printed that warning at every start and after every run, in healthy runs.
            // Workers report a coordinator that does not answer themselves (WorkerSettings.UnansweredWarningEvery).
            .AddHocon("akka.cluster.singleton-proxy.log-singleton-identification-failure = off", HoconAddMode.Prepend)
            // The caller owns SIGTERM (RunAsync stops the run after its step, then leaves): Akka's own hook ran the
            // coordinated shutdown the moment the signal came, before the coordinator could write its checkpoint.
            .AddHocon("akka.coordinated-shutdown.run-by-clr-shutdown-hook = off", HoconAddMode.Prepend)
            // A node without the coordinator role rejoins the seeds once it has seen no coordinator for as long as the
            // split-brain resolver waits before it downs one.
            .AddDnmNodeMonitor(completion, o.IsCoordinator ? null : o.DownAfter);
        if (o.IsCoordinator)
        {
            var settings = new CoordinatorSettings
            {
                MinWorkers = o.MinWorkers, JoinTimeout = o.JoinTimeout, StepTimeout = o.StepTimeout,
                ChecksumEvery = o.ChecksumEvery, AnnounceToCluster = true, Reduction = o.Reduction, AmongWorkersTimeout = o.AmongWorkersTimeout,
                CommitLog = o.CommitLog ? Path.Combine(Path.GetFullPath(config!.Out), "commits.log") : null,
            };
            var dataPlane = new DataPlaneSettings(BindAddress(o.BindHost), o.Host, o.DataPlanePort) { Options = o.DataPlane };
            var device = TorchRuntime.Resolve(DeviceSpec.Parse(devices[0]));
            builder.AddDnmCoordinator(settings, () => new ReplicaBackend(config!, device, dataPlane, observer, o.ResumeFromCheckpoint, telemetry),
                observer, completion, telemetry);
        }
        else
        {
            builder.AddDnmCoordinatorProxy();
        }
        if (o.IsWorker)
        {
            var workerDevices = Enumerable.Range(0, o.LocalWorkers).Select(i => devices[i % devices.Count]).ToArray();
            // Each worker listens on the node's address for the other workers of its worlds: on data-plane-port + i on a worker-only
            // node with a fixed port (a firewall or a NetworkPolicy admits it), else on an ephemeral port (the coordinator's
            // listener holds the fixed one on a node with both roles).
            DataPlaneSettings PeerPlane(int i) => new(BindAddress(o.BindHost), o.Host, !o.IsCoordinator && o.DataPlanePort > 0 ? o.DataPlanePort + i : 0)
                { Options = o.DataPlane };
            builder.AddDnmWorkers(workerDevices, (i, d) => new WorkerReplica($"worker-{i}", TorchRuntime.Resolve(DeviceSpec.Parse(d)), o.DataPlane, telemetry,
                o.WorkerFaults.GetValueOrDefault(i), PeerPlane(i)), completion);
        }
    }

    /// <summary>
    /// Akka.Remote's transport: plain TCP, or with <see cref="DataPlaneOptions.Tls"/> mutual TLS in which each side presents the
    /// node certificate and accepts only a peer whose certificate chains to the cluster's CA (not to the system store): a node
    /// without one cannot associate, so it cannot join, and no message of its reaches an actor.
    /// </summary>
    private static RemoteOptions Remoting(NodeOptions o)
    {
        var remote = new RemoteOptions
        {
            HostName = o.BindHost, PublicHostName = o.Host, Port = o.Port,
            // Room for an evaluation tally (EvaluationProtocol.MaxTallyBytes) beside Akka's own messages.
            MaxFrameSize = Protocol.EvaluationProtocol.MaxFrameBytes,
            SendBufferSize = 2 * Protocol.EvaluationProtocol.MaxFrameBytes,
            ReceiveBufferSize = 2 * Protocol.EvaluationProtocol.MaxFrameBytes,
        };
        if (o.DataPlane.Tls is not { } tls) return remote;
        remote.EnableSsl = true;
        remote.Ssl = new SslOptions
        {
            X509Certificate = tls.Certificate,
            RequireMutualAuthentication = true,
            SuppressValidation = false,
            // Every node may share one certificate, and pods are reached by names a certificate made earlier may not list.
            ValidateCertificateHostname = false,
            CustomValidator = (certificate, _, peer, _, log) =>
            {
                if (tls.Check(certificate) is not { } problem) return true;
                log.Warning("refused the TLS peer {0}: {1}", peer, problem);
                return false;
            },
        };
        return remote;
    }

    /// <summary>
    /// Waits until this node is Up in the cluster, or until <paramref name="ending"/> completes first (the run ended, or this
    /// node's system stopped and it must rejoin); otherwise a clear error naming the seeds. A node rejoining after it lost its
    /// coordinator waits <see cref="NodeOptions.RejoinTimeout"/>: the coordinator may take minutes to come back.
    /// </summary>
    private static async Task<JoinOutcome> JoinAsync(ActorSystem system, NodeOptions o, bool rejoining, Task ending, CancellationToken cancel)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        // A coordinator without seeds founds the cluster.
        if (o.Seeds.Count == 0) cluster.Join(cluster.SelfAddress);
        var timeout = rejoining ? o.RejoinTimeout : o.JoinTimeout;
        try
        {
            // Accepted: the cluster took this node in (Joining, WeaklyUp, ...), so it may have trained; a node never accepted
            // (no seed answered, or its certificate was refused) waits out the timeout and fails with the error below.
            return await WaitForUpAsync(up.Task, ending, () => cluster.SelfMember.Status != MemberStatus.Removed, timeout, cancel).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            var where = $"no seed node answered at {string.Join(", ", o.Seeds)} (is a coordinator node running there, with --host spelled as in --seeds, and is the port open?)";
            throw new ClusterRunException(rejoining
                ? $"this node lost its coordinator and could not rejoin the cluster within {timeout.TotalSeconds:0}s: {where}; exiting, so that a restart of the process tries again"
                : $"could not join the cluster within {timeout.TotalSeconds:0}s: {where}");
        }
    }

    /// <summary>How waiting for a node to be Up ended: it is Up, or the run ended (or the node must rejoin) before it was.</summary>
    internal enum JoinOutcome
    {
        Up,
        EndedFirst,
    }

    /// <summary>How often the join's wait looks whether the cluster has accepted this node.</summary>
    private static readonly TimeSpan AcceptedPoll = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// The join's wait: <see cref="JoinOutcome.Up"/> once <paramref name="up"/> completes; <see cref="JoinOutcome.EndedFirst"/> if
    /// <paramref name="ending"/> completes before it on a node the cluster had accepted (<paramref name="accepted"/> was seen true,
    /// looked at every 250 ms); otherwise a <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    internal static async Task<JoinOutcome> WaitForUpAsync(Task up, Task ending, Func<bool> accepted, TimeSpan timeout, CancellationToken cancel)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var wasAccepted = false;
        while (true)
        {
            if (up.IsCompleted) return JoinOutcome.Up;
            wasAccepted |= accepted();
            if (ending.IsCompleted && wasAccepted) return JoinOutcome.EndedFirst;
            var left = timeout - clock.Elapsed;
            if (left <= TimeSpan.Zero) throw new TimeoutException();
            // Once the run ended on a node never accepted, only Up or the timeout remain.
            var next = ending.IsCompleted ? left : left < AcceptedPoll ? left : AcceptedPoll;
            await Task.WhenAny(up, ending.IsCompleted ? up : ending, Task.Delay(next, cancel)).ConfigureAwait(false);
            cancel.ThrowIfCancellationRequested();
        }
    }

    private static IPAddress BindAddress(string host) =>
        IPAddress.TryParse(host, out var a) ? a
        : host == "localhost" ? IPAddress.Loopback
        : Dns.GetHostAddresses(host).First(x => x.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);

    private static Akka.Event.LogLevel LogLevelOf(string level) => level switch
    {
        "DEBUG" => Akka.Event.LogLevel.DebugLevel,
        "INFO" => Akka.Event.LogLevel.InfoLevel,
        "ERROR" => Akka.Event.LogLevel.ErrorLevel,
        _ => Akka.Event.LogLevel.WarningLevel,
    };

    private sealed class CallerOwnedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
