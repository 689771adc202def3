using System.CommandLine;
using Dnm.Cluster.Hosting;

namespace Dnm.Node.Commands;

/// <summary>
/// `dnm cert create --out DIR [--nodes a,b] [--days N]`: a new cluster CA and a node certificate it signed, as the PEM files of a
/// Kubernetes TLS Secret (ca.crt, tls.crt, tls.key), for `dnm node --tls-cert --tls-key --tls-ca`.
/// </summary>
public static class CertCommand
{
    public static Command Create(CliContext context) => new("cert", "Make the certificates of a cluster's mutual TLS") { CreateCommand(context) };

    private static Command CreateCommand(CliContext context)
    {
        var output = new Option<string>("--out") { Description = "Folder for ca.crt, tls.crt and tls.key (created if missing; existing files are replaced)", Required = true };
        var nodes = new Option<string>("--nodes")
        {
            Description = "DNS names and IP addresses the node certificate lists, comma-separated (localhost and 127.0.0.1 are always in)",
            HelpName = "name,...",
        };
        var days = new Option<int>("--days") { Description = "Days the CA and the node certificate stay valid", DefaultValueFactory = _ => 365 };
        var create = new Command("create", "Make a self-signed cluster CA and one node certificate signed by it, shared by every node") { output, nodes, days };
        create.SetAction(parsed =>
        {
            var directory = Path.GetFullPath(parsed.GetValue(output)!);
            var names = (parsed.GetValue(nodes) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            ClusterCertificates.Create(directory, names, parsed.GetValue(days), context.Clock.GetUtcNow());
            context.Out.WriteLine($"wrote {ClusterCertificates.AuthorityFile}, {ClusterCertificates.CertificateFile} and {ClusterCertificates.KeyFile} " +
                                  $"(valid {parsed.GetValue(days)} days) to {directory}");
            context.Out.WriteLine($"every node: dnm node --tls-cert {Path.Combine(directory, ClusterCertificates.CertificateFile)} " +
                                  $"--tls-key {Path.Combine(directory, ClusterCertificates.KeyFile)} --tls-ca {Path.Combine(directory, ClusterCertificates.AuthorityFile)} ...");
            context.Out.WriteLine($"Kubernetes: kubectl create secret generic dnm-tls --type=kubernetes.io/tls --from-file={directory}/{ClusterCertificates.CertificateFile} " +
                                  $"--from-file={directory}/{ClusterCertificates.KeyFile} --from-file={directory}/{ClusterCertificates.AuthorityFile}");
            return CliErrors.Ok;
        });
        return create;
    }
}
