using System.Text.Json.Nodes;
using Dnm.Cluster.Hosting;
using Dnm.Core.Config;
using Dnm.Node.Telemetry;
using Dnm.Tests.Shared;
using k8s;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>deploy/k8s, every overlay rendered as `kubectl apply -k` would apply it, read into the official model types.</summary>
public sealed class ManifestSpec
{
    public static TheoryData<string> Overlays() => new(Manifests.Overlays);

    /// <summary>The annotation the Job controller puts the completion index of an Indexed Job's pod in.</summary>
    public const string CompletionIndexField = "metadata.annotations['batch.kubernetes.io/job-completion-index']";

    /// <summary>Variables the manifests set only to build others ($(JOB_COMPLETION_INDEX), $(POD_IP)), from the downward API.</summary>
    private static readonly Dictionary<string, string> DownwardApi = new()
    {
        ["POD_NAME"] = "metadata.name",
        ["POD_IP"] = "status.podIP",
        ["JOB_COMPLETION_INDEX"] = CompletionIndexField,
    };

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Should_hold_only_the_kinds_the_specs_check(string overlay)
    {
        var m = Manifests.Render(overlay);
        foreach (var o in m.Objects)
            Assert.True(Manifests.Kinds.Contains(o["kind"]!.GetValue<string>()), $"{overlay}: unexpected {Kustomize.Key(o)}");
        Assert.Equal(["dnm-coordinator", "dnm-worker"], m.Jobs.Select(s => s.Metadata.Name).Order());
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_container_should_have_requests_and_limits(string overlay)
    {
        foreach (var s in Manifests.Render(overlay).Jobs)
            foreach (var c in s.Spec.Template.Spec.Containers.Concat(s.Spec.Template.Spec.InitContainers ?? []))
                foreach (var resource in new[] { "cpu", "memory" })
                {
                    Assert.True(c.Resources?.Requests?.ContainsKey(resource) == true, $"{overlay}: {s.Metadata.Name}/{c.Name} requests no {resource}");
                    Assert.True(c.Resources?.Limits?.ContainsKey(resource) == true, $"{overlay}: {s.Metadata.Name}/{c.Name} has no {resource} limit");
                }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_container_should_probe_healthz_and_readyz_on_the_metrics_port(string overlay)
    {
        foreach (var s in Manifests.Render(overlay).Jobs)
            foreach (var c in s.Spec.Template.Spec.Containers)
            {
                var where = $"{overlay}: {s.Metadata.Name}/{c.Name}";
                Assert.True(c.LivenessProbe?.HttpGet is not null, $"{where}: no HTTP liveness probe");
                Assert.True(c.ReadinessProbe?.HttpGet is not null, $"{where}: no HTTP readiness probe");
                Assert.Equal("/healthz", c.LivenessProbe!.HttpGet.Path);
                Assert.Equal("/readyz", c.ReadinessProbe!.HttpGet.Path);
                Assert.Equal("/healthz", c.StartupProbe?.HttpGet?.Path);
                foreach (var probe in new[] { c.LivenessProbe, c.ReadinessProbe, c.StartupProbe! })
                    Assert.Equal("metrics", probe.HttpGet.Port.Value);
                Assert.Equal(TelemetryOptions.DefaultMetricsPort, Manifests.Port(c, "metrics"));
                Assert.NotNull(c.Lifecycle?.PreStop?.Exec);
            }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Pods_should_stop_gracefully_within_a_grace_period_long_enough_for_a_checkpoint(string overlay)
    {
        var m = Manifests.Render(overlay);
        Assert.True(m.Coordinator.Spec.Template.Spec.TerminationGracePeriodSeconds >= 120);
        Assert.True(m.Workers.Spec.Template.Spec.TerminationGracePeriodSeconds >= 60);
        foreach (var s in m.Jobs)
        {
            // The hook asks dnm (PID 1, the image's ENTRYPOINT) to stop as SIGTERM does, and waits for it to leave.
            var command = string.Join(' ', Manifests.Dnm(s).Lifecycle.PreStop.Exec.Command);
            Assert.Contains("kill -TERM 1", command);
            Assert.Contains("kill -0 1", command);
            Assert.True(s.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
            Assert.Equal(10001, s.Spec.Template.Spec.SecurityContext.RunAsUser);
        }
        Assert.Contains("USER 10001:10001", File.ReadAllLines(Repo.Path("Dockerfile")));
    }

    [Theory]
    [InlineData("gpu", 1)]
    [InlineData("gpu-multi", 2)]
    public void Gpu_overlays_should_ask_for_gpus_and_wire_devices_to_them(string overlay, int gpusPerWorkerPod)
    {
        var m = Manifests.Render(overlay);
        foreach (var s in m.Jobs)
        {
            var c = Manifests.Dnm(s);
            var spec = s.Spec.Template.Spec;
            var gpus = c.Resources.Limits.TryGetValue("nvidia.com/gpu", out var q) ? q.ToInt32() : 0;
            Assert.Equal(s.Metadata.Name == "dnm-worker" ? gpusPerWorkerPod : 1, gpus);
            // The device plugin shows a pod its GPUs as cuda:0..n-1.
            Assert.Equal(string.Join(',', Enumerable.Range(0, gpus).Select(i => $"cuda:{i}")), Manifests.Env(c, NodeEnvironment.Devices));
            Assert.Equal("true", spec.NodeSelector?["nvidia.com/gpu.present"]);
            Assert.Contains(spec.Tolerations ?? [], t => t.Key == "nvidia.com/gpu" && t.OperatorProperty == "Exists" && t.Effect == "NoSchedule");
            Assert.EndsWith(":cuda", c.Image, StringComparison.Ordinal);
        }
        Assert.Equal(gpusPerWorkerPod.ToString(System.Globalization.CultureInfo.InvariantCulture), Manifests.Env(Manifests.Dnm(m.Workers), NodeEnvironment.LocalWorkers));
    }

    [Fact]
    public void Cpu_overlay_should_ask_for_no_gpu()
    {
        var m = Manifests.Render("cpu");
        Assert.DoesNotContain(m.Objects, o => o.ToJsonString().Contains("nvidia.com/gpu", StringComparison.Ordinal));
        foreach (var s in m.Jobs)
        {
            Assert.Equal("cpu", Manifests.Env(Manifests.Dnm(s), NodeEnvironment.Devices));
            Assert.Equal("dnm:cpu", Manifests.Dnm(s).Image);
            Assert.Null(s.Spec.Template.Spec.NodeSelector);
        }
        Assert.Equal("cpu", DnmConfig.FromJson(m.Get<V1ConfigMap>("ConfigMap", "dnm-run-config").Data["run-config.json"], "cpu").Device);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Seeds_should_be_the_coordinator_pods_dns_names_and_akka_port(string overlay)
    {
        var m = Manifests.Render(overlay);
        var coordinator = m.Coordinator;
        // An Indexed Job names pod i's host <job>-<i>; with a subdomain, its DNS name is <job>-<i>.<subdomain>, served by
        // the headless Service of that name.
        Assert.Equal("Indexed", coordinator.Spec.CompletionMode);
        var service = coordinator.Spec.Template.Spec.Subdomain;
        Assert.False(string.IsNullOrEmpty(service), "the coordinator pods need a subdomain for their DNS names");
        var port = int.Parse(Manifests.Env(Manifests.Dnm(coordinator), NodeEnvironment.Port)!, System.Globalization.CultureInfo.InvariantCulture);
        var expected = Enumerable.Range(0, coordinator.Spec.Completions ?? 1).Select(i => $"{coordinator.Metadata.Name}-{i}.{service}:{port}").ToArray();
        foreach (var s in m.Jobs)
        {
            var c = Manifests.Dnm(s);
            Assert.Equal(expected, Manifests.Env(c, NodeEnvironment.Seeds)!.Split(','));
            Assert.Equal(port, Manifests.Port(c, "akka"));
            Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), Manifests.Env(c, NodeEnvironment.Port));
        }
        // A coordinator advertises exactly the name the seeds use for it (Akka compares addresses as text): its own
        // index's, which a replacement pod of the same index keeps.
        var host = Manifests.Dnm(coordinator).Env.Single(e => e.Name == NodeEnvironment.Host);
        Assert.Equal($"{coordinator.Metadata.Name}-$(JOB_COMPLETION_INDEX).{service}", host.Value);
        Assert.Equal(CompletionIndexField, Manifests.Dnm(coordinator).Env.Single(e => e.Name == "JOB_COMPLETION_INDEX").ValueFrom.FieldRef.FieldPath);
        // Workers are reached by pod IP: no DNS name, so no subdomain.
        Assert.Equal("$(POD_IP)", Manifests.Env(Manifests.Dnm(m.Workers), NodeEnvironment.Host));
        Assert.Null(m.Workers.Spec.Template.Spec.Subdomain);

        var gossip = m.Get<V1Service>("Service", service);
        Assert.Equal("None", gossip.Spec.ClusterIP);
        Assert.True(gossip.Spec.PublishNotReadyAddresses, "nodes must find each other before they are ready");
        Assert.Contains(gossip.Spec.Ports, p => p.Name == "akka" && p.Port == port && p.TargetPort.Value == "akka");
        Assert.True(Manifests.Selects(gossip.Spec.Selector, coordinator.Spec.Template.Metadata.Labels), $"{service} does not select the coordinator pods");
        Assert.False(Manifests.Selects(gossip.Spec.Selector, m.Workers.Spec.Template.Metadata.Labels), $"{service} names worker pods, which need no name");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Training_pods_should_run_as_indexed_jobs_that_complete_with_the_run(string overlay)
    {
        var m = Manifests.Render(overlay);
        foreach (var job in m.Jobs)
        {
            var name = job.Metadata.Name;
            var spec = job.Spec;
            Assert.Equal("Indexed", spec.CompletionMode);
            // Every index runs at once, and the worker count can change in place (elastic Indexed Jobs need both equal).
            Assert.Equal(spec.Completions, spec.Parallelism);
            // `dnm node` exits 0 only when the run has finished, so one success is the run's: the Job completes and its
            // lingering pods (stand-bys, a late replacement) are stopped.
            var rule = Assert.Single(spec.SuccessPolicy?.Rules ?? []);
            Assert.Equal(1, rule.SucceededCount);
            Assert.Null(rule.SucceededIndexes);
            // A failed pod is replaced by the Job, which counts it; never restarted forever by the kubelet.
            Assert.Equal("Never", spec.Template.Spec.RestartPolicy);
            Assert.True(spec.BackoffLimit is > 0 || spec.BackoffLimitPerIndex is > 0, $"{name}: a crashed pod must be replaced at least once");
            Assert.Equal("Failed", spec.PodReplacementPolicy);
            // Nothing removes the finished Job before `kubectl wait` and `kubectl logs` have seen it, nor cuts a long run.
            Assert.Null(spec.TtlSecondsAfterFinished);
            Assert.Null(spec.ActiveDeadlineSeconds);

            var rules = spec.PodFailurePolicy.Rules;
            var failJob = Assert.Single(rules, r => r.Action == "FailJob");
            Assert.Equal("dnm", failJob.OnExitCodes.ContainerName);
            Assert.Equal("In", failJob.OnExitCodes.OperatorProperty);
            // Exactly the exit codes that no retry can change (src/Dnm.Node/CliErrors.cs): a bad config or flag, bad data or checkpoint.
            Assert.Equal([Dnm.Node.CliErrors.Usage, Dnm.Node.CliErrors.Data], failJob.OnExitCodes.Values.Order());
            var disruption = Assert.Single(rules, r => r.Action == "Ignore" && r.OnPodConditions is { Count: > 0 });
            Assert.Equal("DisruptionTarget", Assert.Single(disruption.OnPodConditions).Type);
            // A clean SIGTERM stop exits with the container's DNM_STOP_EXIT_CODE: replaced, not counted, and never 0.
            var stopped = Assert.Single(rules, r => r.Action == "Ignore" && r.OnExitCodes is not null);
            var stopCode = int.Parse(Manifests.Env(Manifests.Dnm(spec.Template), NodeEnvironment.StopExitCode)!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal([stopCode], stopped.OnExitCodes.Values);
            Assert.Equal("dnm", stopped.OnExitCodes.ContainerName);
            Assert.NotEqual(Dnm.Node.CliErrors.Ok, stopCode);
            // What must be retried is matched by no rule: an unexpected failure, an interrupted node, a killed one.
            foreach (var retried in new[] { Dnm.Node.CliErrors.Failure, Dnm.Node.CliErrors.Interrupted, 137 })
                Assert.DoesNotContain(rules, r => r.OnExitCodes?.Values.Contains(retried) == true);
        }
        // With stand-bys the coordinator Job counts failures over all of them; each worker index has its own budget.
        Assert.NotNull(m.Coordinator.Spec.BackoffLimit);
        Assert.NotNull(m.Workers.Spec.BackoffLimitPerIndex);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Ports_should_agree_with_the_dnm_defaults(string overlay)
    {
        var m = Manifests.Render(overlay);
        var defaults = new NodeOptions();
        foreach (var s in m.Jobs)
        {
            var c = Manifests.Dnm(s);
            Assert.Equal(defaults.Port, Manifests.Port(c, "akka"));
            Assert.Equal(TelemetryOptions.DefaultMetricsPort, Manifests.Port(c, "metrics"));
            Assert.Equal($"{TelemetryOptions.DefaultMetricsPort}", Manifests.Env(c, NodeEnvironment.MetricsPort));
        }
        var coordinator = Manifests.Dnm(m.Coordinator);
        var dataPlane = Manifests.Port(coordinator, "data-plane");
        Assert.Equal($"{dataPlane}", Manifests.Env(coordinator, NodeEnvironment.DataPlanePort));
        Assert.Contains(m.Get<V1Service>("Service", "dnm-gossip").Spec.Ports, p => p.Port == dataPlane && p.TargetPort.Value == "data-plane");
        var metrics = m.Get<V1Service>("Service", "dnm-metrics");
        Assert.Contains(metrics.Spec.Ports, p => p.Port == TelemetryOptions.DefaultMetricsPort && p.TargetPort.Value == "metrics");
        foreach (var s in m.Jobs)
            Assert.True(Manifests.Selects(metrics.Spec.Selector, s.Spec.Template.Metadata.Labels));
        var exposed = File.ReadAllLines(Repo.Path("Dockerfile")).Single(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal));
        Assert.Equal($"EXPOSE {defaults.Port} {TelemetryOptions.DefaultMetricsPort}", exposed);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_pod_monitor_should_scrape_every_pod_on_its_metrics_port(string overlay)
    {
        var m = Manifests.Render(overlay);
        var monitor = m.Objects.Single(o => o["kind"]!.GetValue<string>() == "PodMonitor");
        Assert.Equal("monitoring.coreos.com/v1", monitor["apiVersion"]!.GetValue<string>());
        var selector = monitor["spec"]!["selector"]!["matchLabels"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var endpoint = monitor["spec"]!["podMetricsEndpoints"]!.AsArray().Single()!;
        Assert.Equal("metrics", endpoint["port"]!.GetValue<string>());
        Assert.Equal("/metrics", endpoint["path"]!.GetValue<string>());
        foreach (var s in m.Jobs)
            Assert.True(Manifests.Selects(selector, s.Spec.Template.Metadata.Labels), $"the PodMonitor does not select {s.Metadata.Name}'s pods");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_dashboard_config_map_should_equal_the_dashboard_file(string overlay)
    {
        var map = Manifests.Render(overlay).Get<V1ConfigMap>("ConfigMap", "dnm-grafana-dashboard");
        Assert.Equal("1", map.Metadata.Labels["grafana_dashboard"]);
        Assert.Equal(File.ReadAllText(Repo.Path("deploy", "grafana", "dnm-training.json")), Assert.Single(map.Data).Value);
        Assert.Equal("dnm-training.json", map.Data.Keys.Single());
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_environment_should_be_exactly_what_dnm_node_reads(string overlay)
    {
        var m = Manifests.Render(overlay);
        foreach (var s in m.Jobs)
            Assert.Empty(EnvironmentProblems(s));
        var c = Manifests.Dnm(m.Coordinator);
        var w = Manifests.Dnm(m.Workers);
        foreach (var name in new[] { NodeEnvironment.Role, NodeEnvironment.Seeds, NodeEnvironment.Host, NodeEnvironment.Port, NodeEnvironment.MetricsPort,
                     NodeEnvironment.JoinTimeout, Dnm.Core.Data.DatasetCatalog.DataDirVariable })
        {
            Assert.NotNull(Manifests.Env(c, name));
            Assert.NotNull(Manifests.Env(w, name));
        }
        Assert.Equal("coordinator", Manifests.Env(c, NodeEnvironment.Role));
        Assert.Equal("worker", Manifests.Env(w, NodeEnvironment.Role));
        // Every value parses as `dnm node` parses it.
        foreach (var container in new[] { c, w })
        {
            var env = container.Env.ToDictionary(e => e.Name, e => e.Value);
            var options = NodeEnvironment.Apply(new NodeOptions(), name => env.GetValueOrDefault(name));
            Assert.Equal(env[NodeEnvironment.Seeds]!.Split(','), options.Seeds);
        }
    }

    [Fact]
    public void A_renamed_variable_should_fail_the_environment_check()
    {
        var objects = Kustomize.Build(Repo.Path("deploy", "k8s", "overlays", "cpu"));
        var json = objects.Single(o => Kustomize.Key(o) == ("Job", "dnm-worker")).ToJsonString()
            .Replace("\"DNM_SEEDS\"", "\"DNM_SEED\"", StringComparison.Ordinal);
        var problems = EnvironmentProblems(KubernetesJson.Deserialize<V1Job>(json));
        Assert.Contains(problems, p => p.Contains("DNM_SEED ", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_coordinator_should_wait_for_exactly_the_workers_the_worker_pods_run(string overlay)
    {
        var m = Manifests.Render(overlay);
        var perPod = int.Parse(Manifests.Env(Manifests.Dnm(m.Workers), NodeEnvironment.LocalWorkers)!, System.Globalization.CultureInfo.InvariantCulture);
        var min = int.Parse(Manifests.Env(Manifests.Dnm(m.Coordinator), NodeEnvironment.MinWorkers)!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(m.Workers.Spec.Completions * perPod, min);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void The_run_config_should_be_valid_and_mounted_where_DNM_CONFIG_points(string overlay)
    {
        var m = Manifests.Render(overlay);
        var coordinator = m.Coordinator;
        var c = Manifests.Dnm(coordinator);
        var path = Manifests.Env(c, NodeEnvironment.Config)!;
        var mount = c.VolumeMounts.Single(v => v.MountPath == Path.GetDirectoryName(path));
        var volume = coordinator.Spec.Template.Spec.Volumes.Single(v => v.Name == mount.Name);
        var map = m.Get<V1ConfigMap>("ConfigMap", volume.ConfigMap.Name);
        var config = DnmConfig.FromJson(map.Data[Path.GetFileName(path)], path).Validated();
        // Checkpoints go to the runs volume, a PersistentVolumeClaim of this deployment: a restarted coordinator resumes there.
        var runs = c.VolumeMounts.Single(v => config.Out.StartsWith(v.MountPath + "/", StringComparison.Ordinal));
        var claim = coordinator.Spec.Template.Spec.Volumes.Single(v => v.Name == runs.Name).PersistentVolumeClaim.ClaimName;
        Assert.NotNull(m.Get<V1PersistentVolumeClaim>("PersistentVolumeClaim", claim));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Every_node_should_see_the_dataset_its_init_container_fetched(string overlay)
    {
        foreach (var s in Manifests.Render(overlay).Jobs)
        {
            var c = Manifests.Dnm(s);
            var init = s.Spec.Template.Spec.InitContainers.Single(i => i.Name == "fetch-data");
            Assert.Equal(["data", "fetch", "mnist"], init.Args);
            Assert.Equal(c.Image, init.Image);
            var data = Manifests.Env(c, Dnm.Core.Data.DatasetCatalog.DataDirVariable);
            Assert.Equal(data, Manifests.Env(init, Dnm.Core.Data.DatasetCatalog.DataDirVariable));
            var volume = c.VolumeMounts.Single(v => v.MountPath == data).Name;
            Assert.Contains(init.VolumeMounts, v => v.MountPath == data && v.Name == volume);
            Assert.Equal(["node"], c.Args);
        }
    }

    /// <summary>
    /// What is wrong with a workload's environment: a variable `dnm node` does not read (NodeEnvironment.Variables),
    /// a downward-API helper that is not one, or a $(VAR) reference to a variable not defined before it.
    /// </summary>
    public static List<string> EnvironmentProblems(V1Job s)
    {
        var problems = new List<string>();
        foreach (var c in s.Spec.Template.Spec.Containers.Concat(s.Spec.Template.Spec.InitContainers ?? []))
        {
            var defined = new HashSet<string>();
            foreach (var e in c.Env ?? [])
            {
                var where = $"{s.Metadata.Name}/{c.Name}: {e.Name} ";
                if (DownwardApi.TryGetValue(e.Name, out var field))
                {
                    if (e.ValueFrom?.FieldRef?.FieldPath != field) problems.Add(where + $"should come from the downward API ({field})");
                }
                else if (!NodeEnvironment.Variables.Contains(e.Name))
                    problems.Add(where + "is not read by dnm node (NodeEnvironment.Variables)");
                else if (e.Value is null)
                    problems.Add(where + "has no value");
                foreach (System.Text.RegularExpressions.Match r in System.Text.RegularExpressions.Regex.Matches(e.Value ?? "", @"\$\(([A-Z_]+)\)"))
                    if (!defined.Contains(r.Groups[1].Value)) problems.Add(where + $"refers to $({r.Groups[1].Value}), not defined before it");
                if (!defined.Add(e.Name)) problems.Add(where + "is set twice");
            }
            foreach (var helper in DownwardApi.Keys.Where(defined.Contains))
                if (!(c.Env ?? []).Any(e => e.Value?.Contains($"$({helper})", StringComparison.Ordinal) == true))
                    problems.Add($"{s.Metadata.Name}/{c.Name}: {helper} is set but not used");
        }
        return problems;
    }
}
