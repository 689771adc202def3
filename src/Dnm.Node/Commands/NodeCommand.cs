using Dnm.Core.Training;
using System.CommandLine;
using Dnm.Cluster.Hosting;
using Dnm.Core.Config;
using Dnm.Core.Runtime;
using Dnm.Core.Telemetry;
using Dnm.Node.Progress;
using Dnm.Node.Telemetry;

namespace Dnm.Node.Commands;

/// <summary>
/// `dnm node`: one process of a training cluster. Its options come from the environment (see
/// <see cref="NodeEnvironment.Variables"/>) and then from these flags; the training flags are the same as
/// `dnm train`'s and count on the coordinator, which sends the run config to the workers.
/// </summary>
public static class NodeCommand
{
    public static Command Create(CliContext context)
    {
        var flags = new ConfigFlags();
        // Metrics bind every interface unless --metrics-host says otherwise: DNM_HOST is the node's cluster name.
        var telemetryFlags = new TelemetryFlags(hostVariable: null);
        var configFile = new Option<string>("--config") { Description = $"JSON run config (as for dnm train) [env {NodeEnvironment.Config}]", HelpName = "file.json" };
        // The node's own options: one flag per entry of the table, whose defaults are NodeOptions' own.
        var defaults = new NodeOptions();
        var nodeFlags = NodeEnvironment.Options.Where(d => d.HasFlag).Select(d =>
        {
            var option = new Option<string>(d.Flag) { Description = $"{d.Help} [env {d.Variable}; default: {d.Show(defaults)}]", HelpName = d.HelpName };
            if (d.Choices is { } choices) option.AcceptOnlyFromAmong([.. choices]);
            return (Descriptor: d, Option: option);
        }).ToArray();

        var command = new Command("node", "Run one node of a training cluster (coordinator, worker or both); see docs/cluster.md");
        foreach (var (_, option) in nodeFlags) command.Add(option);
        command.Add(configFile);
        foreach (var option in flags.Options) command.Add(option);
        foreach (var option in telemetryFlags.Options) command.Add(option);
        command.SetAction(parsed =>
        {
            // Defaults, then the environment, then the flags given.
            var o = NodeEnvironment.Read();
            foreach (var (descriptor, option) in nodeFlags)
                if (parsed.GetValue(option) is { } value) o = descriptor.Parse(o, value.Trim(), descriptor.Flag);
            var file = parsed.GetValue(configFile) ?? Environment.GetEnvironmentVariable(NodeEnvironment.Config);
            var config = flags.Resolve(parsed, string.IsNullOrWhiteSpace(file) ? null : file).Config;
            o = o.Validated();
            // The certificate files fail the node here, before anything starts, naming the file (NodeHost reads them again).
            ClusterCertificates.Load(o)?.Dispose();
            return Run(context, o, config, telemetryFlags.Resolve(parsed, context.Environment));
        });
        return command;
    }

    private static int Run(CliContext context, NodeOptions options, DnmConfig config, TelemetryOptions telemetryOptions)
    {
        var roles = options.Roles.ToString().ToLowerInvariant();
        if (!options.UsesTls)
            context.Error.WriteLine("WARNING: TLS is off: Akka.Remote and the data plane run unauthenticated and unencrypted, and any process that reaches " +
                                    "this node's ports can join the cluster; turn it on with --tls-cert, --tls-key and --tls-ca " +
                                    "(DNM_TLS_CERT, DNM_TLS_KEY, DNM_TLS_CA; make them with `dnm cert create`)");
        context.Out.WriteLine($"dnm node: roles {roles}, {options.Host}:{options.Port}, seeds [{string.Join(", ", options.Seeds)}]" +
                              (options.IsWorker ? $", {options.LocalWorkers} local worker(s)" : "") + (options.UsesTls ? $", mutual TLS (CA {options.TlsCa})" : ""));
        if (options.IsCoordinator)
        {
            config.Validated();
            context.Out.WriteLine($"run directory {Path.GetFullPath(config.Out)}; configuration:");
            context.Out.WriteLine(config.ToJson());
        }
        Cluster.ClusterRunResult result;
        // The tracker computes throughput and ETA for the display; it must hear each event first.
        var tracker = new ProgressTracker(config, context.Clock);
        using (var display = TrainingDisplay.For(context, tracker))
        {
            // /healthz: the process is alive. /readyz: a coordinator is Up in the cluster; a worker has joined a world
            // and holds the run's state. Both of the current actor system: a node that leaves to rejoin is not ready again
            // until its fresh system is. The coordinator's metrics follow the run's events; each local worker records
            // its steps under its rank; a worker-only node's own identity publishes no run metrics.
            var device = TorchRuntime.Resolve(DeviceSpec.Parse(options.Devices.Count > 0 ? options.Devices[0] : config.Device)).ToString();
            var joined = false;
            var role = options.IsCoordinator ? ClusterTelemetry.CoordinatorRole : ClusterTelemetry.WorkerRole;
            NodeTelemetry? self = null;
            using var telemetry = NodeTelemetry.Start(telemetryOptions, new TelemetryIdentity(role, 0, device),
                worldSize: options.MinWorkers, tracker, runId: Guid.NewGuid().ToString("N"), context.Environment, display.Line, context.Error.WriteLine,
                ready: () => options.IsCoordinator ? Volatile.Read(ref joined) : self?.WorkerJoined == true, runMetrics: options.IsCoordinator);
            self = telemetry;
            var observer = options.IsCoordinator ? new CompositeObserver(tracker, display, telemetry.Observer) : new CompositeObserver(tracker, display);
            try
            {
                result = NodeHost.RunAsync(options, options.IsCoordinator ? config : null, observer, context.Cancel,
                    joined: () => Volatile.Write(ref joined, true), telemetry: telemetry.Cluster(options.IsCoordinator),
                    left: () =>
                    {
                        Volatile.Write(ref joined, false);
                        telemetry.NodeLeft();
                    }).GetAwaiter().GetResult();
            }
            catch (RunStoppedException stop) when (context.Terminated())
            {
                // SIGTERM: the coordinator checkpointed its last complete step and every node left the cluster; the same
                // command resumes the run (a worker rejoins it). A requested stop, not a failure.
                display.Line($"{stop.Message} (SIGTERM)" + (stop.GlobalStep is not null ? "; the same command resumes the run there" : "") +
                             (options.StopExitCode != 0 ? $"; exit status {options.StopExitCode} (stop-exit-code)" : ""));
                return options.StopExitCode;
            }
            // Every node: its last steps' numbers (a worker's too) reach Prometheus before the process exits.
            telemetry.AwaitFinalScrape(display.Line, context.Cancel);
        }
        context.Out.WriteLine(result.Final is { } q
            ? $"run finished: {result.GlobalSteps} steps in {ProgressText.Duration(result.Duration)}; final metrics: {ProgressText.Quality(q)}; results in {result.RunDirectory}"
            : $"run finished at global step {result.GlobalSteps}");
        return CliErrors.Ok;
    }

}
