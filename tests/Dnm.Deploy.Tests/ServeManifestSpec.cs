using System.CommandLine;
using Dnm.Node;
using Dnm.Node.Serving;
using k8s.Models;

namespace Dnm.Deploy.Tests;

/// <summary>deploy/k8s/overlays/serve: the placement service's Deployment, Service and probes, checked against what `dnm serve` does.</summary>
public sealed class ServeManifestSpec
{
    private static readonly Manifests M = Manifests.Render(Manifests.ServeOverlay);
    private static V1Deployment Deployment => M.Get<V1Deployment>("Deployment", "dnm-serve");
    private static V1Container Container => Deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "dnm");

    [Fact]
    public void Should_hold_a_deployment_and_a_service_only()
    {
        Assert.Equal([("Deployment", "dnm-serve"), ("Service", "dnm-serve")], M.Objects.Select(Kustomize.Key).Order());
        Assert.Equal("dnm:cpu", Container.Image);
        Assert.True(Deployment.Spec.Replicas >= 2, "one replica is no service: a rollout or a lost node takes it down");
    }

    [Fact]
    public void Its_arguments_should_parse_as_dnm_serve_and_listen_on_the_containers_http_port()
    {
        var args = Container.Args.ToArray();
        Assert.Equal("serve", args[0]);
        var parsed = DnmCli.Build(new CliContext(TextWriter.Null, TextWriter.Null)).Parse(args);
        Assert.Empty(parsed.Errors);
        var port = int.Parse(args[Array.IndexOf(args, "--port") + 1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(ServerOptions.DefaultPort, port);
        Assert.Equal(port, Manifests.Port(Container, "http"));
        // Every limit that bounds a pod's memory is set explicitly (and parses as the server parses it).
        foreach (var flag in new[] { "--max-body", "--max-concurrency", "--max-queue" }) Assert.Contains(flag, args);
        Assert.True(ServerOptions.ParseSize(args[Array.IndexOf(args, "--max-body") + 1], "max-body") <= 64L << 20);
    }

    [Fact]
    public void The_checkpoint_should_be_on_the_training_runs_volume_mounted_read_only()
    {
        var args = Container.Args.ToList();
        var checkpoint = args[args.IndexOf("--checkpoint") + 1];
        var mount = Container.VolumeMounts.Single(v => checkpoint.StartsWith(v.MountPath + "/", StringComparison.Ordinal));
        Assert.True(mount.ReadOnlyProperty);
        var claim = Deployment.Spec.Template.Spec.Volumes.Single(v => v.Name == mount.Name).PersistentVolumeClaim;
        Assert.True(claim.ReadOnlyProperty);
        // The claim and a run directory that a training overlay writes (its run config's "out").
        var finals = Manifests.Overlays.Select(Manifests.Render).Select(training =>
        {
            Assert.NotNull(training.Get<V1PersistentVolumeClaim>("PersistentVolumeClaim", claim.ClaimName));
            var json = training.Get<V1ConfigMap>("ConfigMap", "dnm-run-config").Data["run-config.json"];
            return $"{Dnm.Core.Config.DnmConfig.FromJson(json, "run-config.json").Out}/checkpoints/final.ckpt";
        });
        Assert.Contains(checkpoint, finals);
    }

    [Fact]
    public void Should_probe_healthz_and_readyz_on_the_http_port_and_stop_gracefully()
    {
        var c = Container;
        Assert.Equal("/healthz", c.StartupProbe?.HttpGet?.Path);
        Assert.Equal("/healthz", c.LivenessProbe?.HttpGet?.Path);
        Assert.Equal("/readyz", c.ReadinessProbe?.HttpGet?.Path);
        foreach (var probe in new[] { c.StartupProbe!, c.LivenessProbe!, c.ReadinessProbe! }) Assert.Equal("http", probe.HttpGet.Port.Value);
        Assert.NotNull(c.Lifecycle?.PreStop?.Exec);
        var spec = Deployment.Spec.Template.Spec;
        Assert.True(spec.SecurityContext.RunAsNonRoot);
        Assert.Equal(10001, spec.SecurityContext.RunAsUser);
        foreach (var resource in new[] { "cpu", "memory" })
        {
            Assert.True(c.Resources?.Requests?.ContainsKey(resource) == true, $"requests no {resource}");
            Assert.True(c.Resources?.Limits?.ContainsKey(resource) == true, $"has no {resource} limit");
        }
    }

    [Fact]
    public void The_service_should_select_the_serving_pods_on_the_http_port()
    {
        var service = M.Get<V1Service>("Service", "dnm-serve");
        var labels = Deployment.Spec.Template.Metadata.Labels;
        Assert.All(service.Spec.Selector, kv => Assert.Equal(kv.Value, labels[kv.Key]));
        Assert.Equal(Deployment.Spec.Selector.MatchLabels, service.Spec.Selector);
        var port = Assert.Single(service.Spec.Ports);
        Assert.Equal("http", port.TargetPort.Value);
        Assert.Equal(ServerOptions.DefaultPort, port.Port);
        // The training cluster's services must not pick up the serving pods (nor its PodMonitor scrape them as trainers).
        var metrics = Manifests.Render("cpu").Get<V1Service>("Service", "dnm-metrics");
        Assert.False(metrics.Spec.Selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value));
    }
}
