using System.Net;
using Akka.Actor;
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
    /// <param name="joined">Called once this node is Up in the cluster (what a `dnm node`'s /readyz reports).</param>
    /// <param name="telemetry">Where the coordinator and the workers record metrics and spans; none by default.</param>
    public static async Task<ClusterRunResult> RunAsync(NodeOptions options, DnmConfig? config, ITrainingObserver observer, CancellationToken cancel,
        Action? joined = null, ClusterTelemetry? telemetry = null)
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
        var completion = new RunCompletion();
        using var host = new HostBuilder()
            .ConfigureServices(services =>
            {
                // The caller owns Ctrl+C and SIGTERM (it cancels); the host must not install its own handlers.
                services.AddSingleton<IHostLifetime, CallerOwnedLifetime>();
                services.AddAkka(options.ClusterName, (builder, _) => Configure(builder, options, config, observer, completion, telemetry));
            })
            .Build();
        await host.StartAsync(cancel).ConfigureAwait(false);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            _ = system.WhenTerminated.ContinueWith(_ => completion.Fail(new ClusterRunException(
                "this node's actor system stopped before the run ended (downed by the split-brain resolver, or shut down)")), TaskScheduler.Default);
            await JoinAsync(system, options, cancel).ConfigureAwait(false);
            joined?.Invoke();
            var result = await completion.Task.WaitAsync(cancel).ConfigureAwait(false);
            return result with { Duration = wall.Elapsed };
        }
        finally
        {
            // Leaves the cluster gracefully (a coordinator hands the singleton over).
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await host.StopAsync(grace.Token).ConfigureAwait(false);
        }
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
            .AddDnmNodeMonitor(completion);
        if (o.IsCoordinator)
        {
            var settings = new CoordinatorSettings
            {
                MinWorkers = o.MinWorkers, JoinTimeout = o.JoinTimeout, StepTimeout = o.StepTimeout,
                ChecksumEvery = o.ChecksumEvery, AnnounceToCluster = true,
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
            builder.AddDnmWorkers(workerDevices, (i, d) => new WorkerReplica($"worker-{i}", TorchRuntime.Resolve(DeviceSpec.Parse(d)), o.DataPlane, telemetry,
                o.WorkerFaults.GetValueOrDefault(i)), completion);
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

    /// <summary>Waits until this node is Up in the cluster; otherwise a clear error naming the seeds.</summary>
    private static async Task JoinAsync(ActorSystem system, NodeOptions o, CancellationToken cancel)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        // A coordinator without seeds founds the cluster.
        if (o.Seeds.Count == 0) cluster.Join(cluster.SelfAddress);
        try
        {
            await up.Task.WaitAsync(o.JoinTimeout, cancel).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new ClusterRunException(
                $"could not join the cluster within {o.JoinTimeout.TotalSeconds:0}s: no seed node answered at {string.Join(", ", o.Seeds)} " +
                $"(is a coordinator node running there, with --host spelled as in --seeds, and is the port open?)");
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
