using System.Runtime.InteropServices;
using Dnm.Node;

using var cancel = new CancellationTokenSource();

// Ctrl+C stops after the current step so the run can be resumed from its last checkpoint;
// a second Ctrl+C is not intercepted and ends the process at once.
Console.CancelKeyPress += (_, e) =>
{
    if (cancel.IsCancellationRequested) return;
    e.Cancel = true;
    Console.Error.WriteLine("\nstopping after the current step (press Ctrl+C again to abort at once)...");
    cancel.Cancel();
};

// Kubernetes stops a pod with SIGTERM: treat it like Ctrl+C so the pod shuts down cleanly within its grace period.
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancel.Cancel();
});

return DnmCli.Run(args, CliContext.ForConsole(cancel.Token));
