// The Node child: plain Node code, nothing muster-specific.
process.on('message', (message) => {
  console.log('child got:', JSON.stringify(message));
  process.send('bbb');
});
// Once the parent closes the channel, nothing keeps this process alive and it exits.
