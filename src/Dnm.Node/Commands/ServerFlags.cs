using System.CommandLine;
using System.Net;
using Dnm.Core.Config;
using Dnm.Core.Explore;
using Dnm.Core.Runtime;
using Dnm.Core.Training;
using Dnm.Node.Serving;

namespace Dnm.Node.Commands;

/// <summary>The flags `dnm serve` and `dnm explore` share: the checkpoint, the device, the address and the server's limits.</summary>
public sealed class ServerFlags
{
    private readonly Option<string> checkpoint = new("--checkpoint") { Description = "Checkpoint file (e.g. <run>/checkpoints/final.ckpt)", Required = true, HelpName = "path" };
    private readonly Option<string> device = new("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
    private readonly Option<int> port = new("--port") { Description = "TCP port of the server (0 picks a free one)", DefaultValueFactory = _ => ServerOptions.DefaultPort };
    private readonly Option<string> host = new("--host") { Description = "Address or host name to bind [default: every interface]" };
    private readonly Option<string> maxBody = new("--max-body") { Description = "Largest request body; larger ones get 413", DefaultValueFactory = _ => "16MB", HelpName = "size" };
    private readonly Option<int> maxBatch = new("--max-batch") { Description = "Most images in one request", DefaultValueFactory = _ => new ServerOptions().MaxBatch };
    private readonly Option<long> maxPixels = new("--max-image-pixels") { Description = "Most pixels an image may declare (decompression bombs are refused from the header)", DefaultValueFactory = _ => new ServerOptions().MaxImagePixels };
    private readonly Option<int> maxConcurrency = new("--max-concurrency") { Description = "Placement requests computed at once", DefaultValueFactory = _ => new ServerOptions().MaxConcurrency };
    private readonly Option<int> maxQueue = new("--max-queue") { Description = "Placement requests that may wait for a turn; more get 503", DefaultValueFactory = _ => new ServerOptions().MaxQueue };
    private readonly Option<int> replicas = new("--replicas") { Description = "Model copies that embed in parallel [default: one per core, at most --max-concurrency]", DefaultValueFactory = _ => 0 };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { checkpoint, device, port, host, maxBody, maxBatch, maxPixels, maxConcurrency, maxQueue, replicas }) command.Add(option);
    }

    public ServerOptions Options(ParseResult parsed) => new ServerOptions
    {
        Addresses = Addresses(parsed.GetValue(host)),
        Port = parsed.GetValue(port),
        MaxBodyBytes = ServerOptions.ParseSize(parsed.GetValue(maxBody)!, "max-body"),
        MaxBatch = parsed.GetValue(maxBatch),
        MaxImagePixels = parsed.GetValue(maxPixels),
        MaxConcurrency = parsed.GetValue(maxConcurrency),
        MaxQueue = parsed.GetValue(maxQueue),
        Replicas = parsed.GetValue(replicas),
    }.Validated();

    /// <summary>Reads and verifies the checkpoint, starts torch and builds the placer's replicas.</summary>
    public MapPlacer LoadPlacer(ParseResult parsed, ServerOptions options, TextWriter log)
    {
        var spec = DeviceSpec.Parse(parsed.GetValue(device)!);
        var path = parsed.GetValue(checkpoint)!;
        var ckpt = Checkpoint.Load(path);
        var (torchDevice, runtime) = TorchRuntime.Initialize(spec, 0, log.WriteLine);
        var placer = MapPlacer.Create(ckpt, path, torchDevice, options.ResolvedReplicas);
        log.WriteLine($"checkpoint {path}: {ckpt.Config.Map} map, latent {ckpt.Config.Latent}, {ckpt.Shape} images, trained on {ckpt.Config.Dataset} to global step {ckpt.State.GlobalStep}; device {runtime.Device}, {placer.Replicas} replica(s)");
        return placer;
    }

    private static IReadOnlyList<IPAddress> Addresses(string? host)
    {
        if (string.IsNullOrWhiteSpace(host) || host is "*" or "+") return [];
        if (IPAddress.TryParse(host.Trim('[', ']'), out var address))
            return address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ? [] : [address];
        try
        {
            return Dns.GetHostAddresses(host);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new ConfigException($"host '{host}' does not resolve ({e.Message}); give an address, or leave --host out to serve on every interface");
        }
    }

    /// <summary>Starts the server; a port in use is a usage error naming the fix.</summary>
    public static MapServer Start(ServerOptions options, ServerState state, bool explorerPage, TextWriter log)
    {
        try
        {
            return MapServer.StartAsync(options, state, explorerPage, log.WriteLine).GetAwaiter().GetResult();
        }
        catch (IOException e)
        {
            throw new ConfigException($"cannot listen on port {options.Port} ({e.Message}); pick another with --port");
        }
    }
}
