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
        var role = new Option<string>("--role") { Description = $"coordinator, worker or both [env {NodeEnvironment.Role}; default: both]" };
        role.AcceptOnlyFromAmong("coordinator", "worker", "both");
        var seeds = Text("--seeds", "Seed nodes host:port,... (DNS names work); none on a coordinator founds the cluster", NodeEnvironment.Seeds, "host:port,...");
        var host = Text("--host", "Name other nodes reach this one by (must match their --seeds)", NodeEnvironment.Host, "name");
        var bindHost = Text("--bind-host", "Local address to listen on", NodeEnvironment.BindHost, "address");
        var port = Number("--port", "Akka remoting port [default: 4053]", NodeEnvironment.Port);
        var dataPlanePort = Number("--data-plane-port", "Coordinator's tensor data-plane port; 0 = ephemeral [default: 0]", NodeEnvironment.DataPlanePort);
        var localWorkers = Number("--local-workers", "Workers in this process [default: 1]", NodeEnvironment.LocalWorkers);
        var devices = Text("--devices", "Devices of the local workers, round-robin: cpu or cuda:0,cuda:1 [default: --device]", NodeEnvironment.Devices, "list");
        var minWorkers = Number("--min-workers", "Workers the coordinator waits for before the first step [default: 1]", NodeEnvironment.MinWorkers);
        var joinTimeout = Text("--join-timeout", "How long to wait for the seeds and for min-workers [default: 60s]", NodeEnvironment.JoinTimeout, "duration");
        var stepTimeout = Text("--step-timeout", "How long a step may take before it is retried [default: 120s]", NodeEnvironment.StepTimeout, "duration");

        var command = new Command("node", "Run one node of a training cluster (coordinator, worker or both); see docs/cluster.md");
        foreach (var option in new Option[] { role, seeds, host, bindHost, port, dataPlanePort, localWorkers, devices, minWorkers, joinTimeout, stepTimeout, configFile })
            command.Add(option);
        foreach (var option in flags.Options) command.Add(option);
        foreach (var option in telemetryFlags.Options) command.Add(option);
        command.SetAction(parsed =>
        {
            var o = NodeEnvironment.Read();
            if (parsed.GetValue(role) is { } r) o = o with { Roles = NodeEnvironment.ParseRole(r) };
            if (parsed.GetValue(seeds) is { } s) o = o with { Seeds = s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) };
            if (parsed.GetValue(host) is { } h) o = o with { Host = h };
            if (parsed.GetValue(bindHost) is { } b) o = o with { BindHost = b };
            if (parsed.GetResult(port) is not null) o = o with { Port = parsed.GetValue(port) };
            if (parsed.GetResult(dataPlanePort) is not null) o = o with { DataPlanePort = parsed.GetValue(dataPlanePort) };
            if (parsed.GetResult(localWorkers) is not null) o = o with { LocalWorkers = parsed.GetValue(localWorkers) };
            if (parsed.GetValue(devices) is { } d) o = o with { Devices = d.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) };
            if (parsed.GetResult(minWorkers) is not null) o = o with { MinWorkers = parsed.GetValue(minWorkers) };
            if (parsed.GetValue(joinTimeout) is { } jt) o = o with { JoinTimeout = NodeEnvironment.ParseDuration(jt, "--join-timeout") };
            if (parsed.GetValue(stepTimeout) is { } st) o = o with { StepTimeout = NodeEnvironment.ParseDuration(st, "--step-timeout") };
            var file = parsed.GetValue(configFile) ?? Environment.GetEnvironmentVariable(NodeEnvironment.Config);
            var config = flags.Resolve(parsed, string.IsNullOrWhiteSpace(file) ? null : file).Config;
            return Run(context, o.Validated(), config, telemetryFlags.Resolve(parsed, context.Environment));
        });
        return command;
    }

    private static int Run(CliContext context, NodeOptions options, DnmConfig config, TelemetryOptions telemetryOptions)
    {
        var roles = options.Roles.ToString().ToLowerInvariant();
        context.Out.WriteLine($"dnm node: roles {roles}, {options.Host}:{options.Port}, seeds [{string.Join(", ", options.Seeds)}]" +
                              (options.IsWorker ? $", {options.LocalWorkers} local worker(s)" : ""));
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
            // and holds the run's state. The coordinator's metrics follow the run's events; each local worker records
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
            result = NodeHost.RunAsync(options, options.IsCoordinator ? config : null, observer, context.Cancel,
                joined: () => Volatile.Write(ref joined, true), telemetry: telemetry.Cluster(options.IsCoordinator)).GetAwaiter().GetResult();
            // Every node: its last steps' numbers (a worker's too) reach Prometheus before the process exits.
            telemetry.AwaitFinalScrape(display.Line, context.Cancel);
        }
        context.Out.WriteLine(result.Final is { } q
            ? $"run finished: {result.GlobalSteps} steps in {ProgressText.Duration(result.Duration)}; final metrics: {ProgressText.Quality(q)}; results in {result.RunDirectory}"
            : $"run finished at global step {result.GlobalSteps}");
        return CliErrors.Ok;
    }

    private static Option<string> Text(string name, string description, string variable, string helpName) =>
        new(name) { Description = $"{description} [env {variable}]", HelpName = helpName };

    private static Option<int> Number(string name, string description, string variable) =>
        new(name) { Description = $"{description.Replace(" [default", $" [env {variable}; default", StringComparison.Ordinal)}" };
}
